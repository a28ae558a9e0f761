#!/usr/bin/env python3
"""A real smart-HTTP Git server for the demo: Git's own `git http-backend` behind a tiny HTTP server.

    git_http.py ROOT PORT_FILE    serves every repository under ROOT on a free loopback port,
                                  written to PORT_FILE once listening
"""
import http.server
import os
import subprocess
import sys


class GitHandler(http.server.BaseHTTPRequestHandler):
    root = "."

    def do_GET(self):
        self.backend()

    def do_POST(self):
        self.backend()

    def backend(self):
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
        }
        for header in ("Git-Protocol", "Content-Encoding"):
            if header in self.headers:
                env["HTTP_" + header.upper().replace("-", "_")] = self.headers[header]
        result = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        # CGI output: headers (CRLF-separated), a blank line, the body.
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, fmt, *args):
        sys.stderr.write("git-http: " + fmt % args + "\n")


def main():
    root, port_file = sys.argv[1], sys.argv[2]
    # DEMO_MODE=helm: the real node's bridge address, so the operator's pod reaches it.
    address = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    GitHandler.root = os.path.abspath(root)
    server = http.server.ThreadingHTTPServer((address, 0), GitHandler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
