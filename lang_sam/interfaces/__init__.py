"""The faces of lang-sam: the CLI, the app, the server and what they share (the model pool)."""
