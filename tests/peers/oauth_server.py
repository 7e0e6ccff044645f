#!/usr/bin/env python3
"""OAuth-protected MCP test peer (streamable HTTP) built on the Python `mcp` SDK (2.x).

The SDK provides every OAuth endpoint (RFC 8414 AS metadata, RFC 9728 PRM, RFC 7591
registration, /authorize, /token, /revoke, bearer-token middleware); this file only supplies
an in-memory `OAuthAuthorizationServerProvider` whose /authorize auto-approves (redirects
straight back to redirect_uri with code+state, no login page), so the flow is headless.

Usage:  python oauth_server.py [--port 0] [--access-token-ttl 3600] [--iss [--iss-value URL]] ...
Prints `http://127.0.0.1:PORT/mcp` as the first stdout line once listening; exits when its
stdin closes (so a test that dies leaves no server behind). `GET /test/stats` counts what
happened, `POST /test/revoke-all` revokes every token. Every flag can also come from an env
var (see argparse defaults below).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import sys
import threading
import time
import warnings

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.routes import build_metadata
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


class InMemoryAutoApproveProvider:
    """Implements mcp.server.auth.provider.OAuthAuthorizationServerProvider (a Protocol)."""

    def __init__(self, *, issuer: str, resource: str, access_ttl: int, refresh_ttl: int | None,
                 default_scopes: list[str], add_iss: bool, bind_resource: bool,
                 iss_value: str | None = None) -> None:
        self.issuer = issuer
        self.iss_value = iss_value or issuer
        self.resource = resource
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.default_scopes = default_scopes
        self.add_iss = add_iss
        self.bind_resource = bind_resource
        self.clients: dict[str, OAuthClientInformationFull] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.access_to_refresh: dict[str, str] = {}
        self.stats = {"registrations": 0, "authorizations": 0, "code_exchanges": 0, "refreshes": 0, "revocations": 0}

    # --- clients (RFC 7591) ---
    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        self.clients[client_info.client_id] = client_info
        self.stats["registrations"] += 1

    # --- /authorize: auto-approve ---
    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if self.bind_resource and params.resource is not None and params.resource.rstrip("/") != self.resource:
            raise AuthorizeError("invalid_target", f"unknown resource {params.resource!r}")
        code = secrets.token_urlsafe(32)
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=params.scopes or self.default_scopes,
            expires_at=time.time() + 300,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
            subject="test-user",
        )
        self.stats["authorizations"] += 1
        extra = {"iss": self.iss_value} if self.add_iss else {}
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state, **extra)

    # --- /token ---
    async def load_authorization_code(self, client: OAuthClientInformationFull, authorization_code: str):
        return self.codes.get(authorization_code)

    def _issue(self, client_id: str, scopes: list[str], resource: str | None, subject: str | None) -> OAuthToken:
        at, rt = "at_" + secrets.token_urlsafe(24), "rt_" + secrets.token_urlsafe(24)
        now = int(time.time())
        self.access[at] = AccessToken(token=at, client_id=client_id, scopes=scopes,
                                      expires_at=now + self.access_ttl, resource=resource, subject=subject)
        self.refresh[rt] = RefreshToken(token=rt, client_id=client_id, scopes=scopes,
                                        expires_at=(now + self.refresh_ttl) if self.refresh_ttl else None,
                                        resource=resource, subject=subject)
        self.access_to_refresh[at] = rt
        return OAuthToken(access_token=at, token_type="Bearer", expires_in=self.access_ttl,
                          scope=" ".join(scopes), refresh_token=rt)

    async def exchange_authorization_code(self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode) -> OAuthToken:
        if self.codes.pop(authorization_code.code, None) is None:  # single use
            raise TokenError("invalid_grant", "authorization code already used")
        self.stats["code_exchanges"] += 1
        return self._issue(client.client_id, authorization_code.scopes, authorization_code.resource, authorization_code.subject)

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str):
        return self.refresh.get(refresh_token)

    async def exchange_refresh_token(self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]) -> OAuthToken:
        # rotate: old refresh token and its access tokens die
        self.refresh.pop(refresh_token.token, None)
        for at, rt in list(self.access_to_refresh.items()):
            if rt == refresh_token.token:
                self.access.pop(at, None)
                self.access_to_refresh.pop(at, None)
        self.stats["refreshes"] += 1
        return self._issue(client.client_id, scopes, refresh_token.resource, refresh_token.subject)

    # --- bearer verification (used by ProviderTokenVerifier) ---
    async def load_access_token(self, token: str) -> AccessToken | None:
        tok = self.access.get(token)
        if tok and tok.expires_at and tok.expires_at < time.time():
            return None
        return tok

    # --- /revoke (RFC 7009) ---
    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        self.stats["revocations"] += 1
        if isinstance(token, AccessToken):
            self.access.pop(token.token, None)
            rt = self.access_to_refresh.pop(token.token, None)
            if rt:
                self.refresh.pop(rt, None)
        else:
            self.refresh.pop(token.token, None)
            for at, rt in list(self.access_to_refresh.items()):
                if rt == token.token:
                    self.access.pop(at, None)
                    self.access_to_refresh.pop(at, None)

    def revoke_all(self) -> None:
        self.access.clear(); self.refresh.clear(); self.access_to_refresh.clear()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default=_env("MCP_OAUTH_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(_env("MCP_OAUTH_PORT", "0")))
    p.add_argument("--access-token-ttl", type=int, default=int(_env("MCP_OAUTH_ACCESS_TTL", "3600")))
    p.add_argument("--refresh-token-ttl", type=int, default=int(_env("MCP_OAUTH_REFRESH_TTL", "0")), help="0 = never")
    p.add_argument("--scopes", default=_env("MCP_OAUTH_SCOPES", "mcp:read mcp:write"), help="valid/default scopes")
    p.add_argument("--required-scope", default=_env("MCP_OAUTH_REQUIRED_SCOPE", "mcp:read"), help="'' = none")
    p.add_argument("--iss", action="store_true", default=_env("MCP_OAUTH_ISS", "0") == "1",
                   help="RFC 9207: add iss to the authorization response and advertise it in AS metadata")
    p.add_argument("--iss-value", default=None,
                   help="with --iss: the iss sent back (a wrong one, to test the client's check)")
    p.add_argument("--validate-resource", action="store_true", default=_env("MCP_OAUTH_VALIDATE_RESOURCE", "0") == "1",
                   help="RFC 8707: reject unknown `resource` at /authorize and tokens not bound to this /mcp")
    p.add_argument("--json-response", action="store_true", help="application/json instead of SSE for POST /mcp")
    p.add_argument("--log-level", default=_env("MCP_OAUTH_LOG_LEVEL", "warning"))
    args = p.parse_args()

    # Bind first so the URLs (issuer, resource) can embed the ephemeral port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    base = f"http://{args.host}:{port}"
    mcp_url = f"{base}/mcp"

    scopes = args.scopes.split()
    required = args.required_scope.split() if args.required_scope else None
    provider = InMemoryAutoApproveProvider(
        issuer=base, resource=mcp_url, access_ttl=args.access_token_ttl,
        refresh_ttl=args.refresh_token_ttl or None, default_scopes=scopes,
        add_iss=args.iss, bind_resource=args.validate_resource, iss_value=args.iss_value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # validate_token_resource=False deprecation chatter
        auth = AuthSettings(
            issuer_url=base,  # str, NOT AnyHttpUrl(base): that would add a trailing '/' to the issuer
            resource_server_url=mcp_url,
            client_registration_options=ClientRegistrationOptions(enabled=True, valid_scopes=scopes, default_scopes=scopes),
            revocation_options=RevocationOptions(enabled=True),
            required_scopes=required,
            validate_token_resource=args.validate_resource,
        )
    server = MCPServer("oauth-test-peer", auth_server_provider=provider, auth=auth, log_level="WARNING")

    @server.tool()
    def whoami() -> dict:
        """Return the client id, scopes, subject and resource of the caller's access token."""
        tok = get_access_token()
        if tok is None:
            return {"authenticated": False}
        return {"authenticated": True, "client_id": tok.client_id, "scopes": tok.scopes,
                "subject": tok.subject, "resource": tok.resource, "expires_at": tok.expires_at}

    @server.tool()
    def echo(text: str) -> str:
        """Echo text back."""
        return text

    # Unauthenticated test-control endpoints.
    @server.custom_route("/test/revoke-all", methods=["POST"])
    async def revoke_all(request: Request) -> Response:
        provider.revoke_all()
        return JSONResponse({"revoked": True})

    @server.custom_route("/test/stats", methods=["GET"])
    async def stats(request: Request) -> Response:
        return JSONResponse({**provider.stats, "live_access_tokens": len(provider.access),
                             "live_refresh_tokens": len(provider.refresh), "clients": len(provider.clients)})

    app = server.streamable_http_app(json_response=args.json_response, host=args.host)

    if args.iss:
        # The SDK's build_metadata() never sets authorization_response_iss_parameter_supported;
        # shadow its AS-metadata route with one that does (first matching route wins).
        md = build_metadata(auth.issuer_url, None, auth.client_registration_options, auth.revocation_options)
        md.authorization_response_iss_parameter_supported = True
        body = md.model_dump(mode="json", exclude_none=True)

        async def as_metadata(request: Request) -> Response:
            return JSONResponse(body, headers={"Access-Control-Allow-Origin": "*"})

        app.router.routes.insert(0, Route("/.well-known/oauth-authorization-server", as_metadata, methods=["GET"]))

    config = uvicorn.Config(app, log_level=args.log_level, lifespan="on")
    userver = uvicorn.Server(config)

    async def run() -> None:
        async def announce() -> None:
            while not userver.started:
                await asyncio.sleep(0.01)
            print(mcp_url, flush=True)

        t = asyncio.create_task(announce())
        await userver.serve(sockets=[sock])
        t.cancel()

    def exit_when_stdin_closes() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    asyncio.run(run())


if __name__ == "__main__":
    main()
