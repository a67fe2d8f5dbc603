"""``hfdeploy mcp``: every capability as an MCP tool (needs the ``mcp`` extra)."""
