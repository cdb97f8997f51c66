def report(store):
    return dict(store.items)
