"""The HTTP API's parts: request/response models, dependencies, routers and
metrics. ``service.app.create_app`` puts them together."""
