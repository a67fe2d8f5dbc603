"""Wire formats, one module per protocol: TEI and OpenAI."""
