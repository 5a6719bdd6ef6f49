"""matrix-bot-tester: replay YAML conversations against Matrix bots over a real homeserver."""

__version__ = "0.1.0"
