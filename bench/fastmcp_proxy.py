"""FastMCP 4.1.6's proxy (`create_proxy`) over a registry file, on streamable HTTP: the peer
`cargo bench --bench multitenant` compares `serve --http` with. Usage: REGISTRY PORT."""

import json
import sys

from fastmcp.server import create_proxy

registry = json.load(open(sys.argv[1]))
proxy = create_proxy({"mcpServers": registry["mcpServers"]})
proxy.run(transport="http", host="127.0.0.1", port=int(sys.argv[2]), show_banner=False)
