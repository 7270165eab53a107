"""Any OpenAI-compatible chat API as a scalecode backend."""
