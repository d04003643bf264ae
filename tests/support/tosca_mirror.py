"""What IM downloads while reading our template, served on 127.0.0.1 instead of the internet.

IM fetches every import and every interface implementation by URL. The mirror serves the
upstream type files (the shared copy), this checkout's tosca/ folder and a repository archive,
each with its URLs rewritten to point back at the mirror. The upstream artifact playbooks (the
Compute node's user setup) are not part of the shared copy: they are served as empty plays,
since only our own steps are under test.
"""

from __future__ import annotations

import re
import threading
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mlaas4hep_cli.tosca import DEFAULT_SOURCE, ProjectSource
from mlaas4hep_cli.tosca.locations import SPELLED_SOURCE

UPSTREAM_ARTIFACT = b"- hosts: all\n  tasks: []\n"


class ToscaMirror:
    def __init__(self, types_dir: Path, tosca_dir: Path, archive: bytes) -> None:
        self.types_dir, self.tosca_dir, self.archive = types_dir, tosca_dir, archive
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def source(self) -> ProjectSource:
        """This project as served by the mirror (for render_template)."""
        return ProjectSource(f"{self.base}/project", f"{self.base}/project/archive.tar.gz")

    def rewrite(self, text: str) -> str:
        text = re.sub(
            r"https://baltig\.infn\.it/infn-cloud/tosca-types/raw/[^/]+/",
            f"{self.base}/infn-cloud/",
            text,
        )
        text = re.sub(
            r"https://raw\.githubusercontent\.com/indigo-dc/tosca-types/[^/]+/",
            f"{self.base}/indigo-dc/",
            text,
        )
        for project in (DEFAULT_SOURCE, SPELLED_SOURCE):  # the release, and the files' main
            text = text.replace(project.archive, self.source.archive)
            text = text.replace(project.raw_base + "/", self.source.raw_base + "/")
        return text

    def content(self, path: str) -> bytes | None:
        if path == "/project/archive.tar.gz":
            return self.archive
        if path.startswith("/infn-cloud/artifacts/"):
            return UPSTREAM_ARTIFACT
        for prefix, folder in (
            ("/infn-cloud/", self.types_dir / "infn-cloud"),
            ("/indigo-dc/", self.types_dir / "indigo-dc"),
            ("/project/tosca/", self.tosca_dir),
        ):
            if path.startswith(prefix):
                file = (folder / path[len(prefix) :]).resolve()
                if file.is_file() and file.is_relative_to(folder.resolve()):
                    return self.rewrite(file.read_text(encoding="utf-8")).encode()
        return None

    def start(self) -> ToscaMirror:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, mirror: ToscaMirror, *args, **kwargs) -> None:
        self.mirror = mirror
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.mirror.requests.append(self.path)
        body = self.mirror.content(self.path)
        if body is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass
