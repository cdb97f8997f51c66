"""A stage as a third-party package would ship it (entry point group `lynkr.stages`)."""
from lynkr import Stage


class PluginStage(Stage):
    name = "plugin_example"
    summary = "Does nothing; proves entry-point registration."

    async def run(self, x):
        pass
