"""A tiny inventory store."""
import json


class Store:
    def __init__(self, path):
        self.path = path
        self.items = {}

    def load(self):
        with open(self.path) as f:
            self.items = json.load(f)

    def add(self, sku, qty):
        self.items[sku] = self.items.get(sku, 0) + qty

    def remove(self, sku, qty):
        self.items[sku] = self.items.get(sku, 0) - qty

    def save(self):
        with open(self.path, "w") as f:
            json.dump(self.items, f)
