"""A store behind cutover's HTTP API, on another host."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cutover.store.interface import StoreError
from cutover.store.records import RecallQuery, Record

if TYPE_CHECKING:
    import httpx


class HttpStore:
    """A remote memory service that speaks cutover's HTTP API (/v1/memories, /v1/recall)."""

    def __init__(self, name: str, base_url: str, timeout: float = 2.0, agent_id: str = "cutover-gateway"):
        import httpx

        self.name, self.base_url = name, base_url
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers={"X-Agent-Id": agent_id})

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        import httpx

        try:
            r = self._client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise StoreError(f"{self.name}: {exc}") from exc
        if r.status_code >= 500:
            raise StoreError(f"{self.name}: HTTP {r.status_code}")
        return r

    def put(self, rec: Record, auto_version: bool = False) -> Record:
        body = rec.dump()
        if auto_version:
            body.pop("version", None)
        r = self._call("POST", "/v1/memories", json=body)
        r.raise_for_status()
        return Record.model_validate(r.json()["record"])

    @staticmethod
    def _path(namespace: str, id: str) -> str:
        """The record's URL path, each part escaped: no ?, # or %2F can move it to another record."""
        from urllib.parse import quote

        return f"/v1/memories/{quote(namespace, safe='/')}/{quote(id, safe='')}"

    def get(self, namespace: str, id: str) -> Record | None:
        r = self._call("GET", self._path(namespace, id))
        return Record.model_validate(r.json()["record"]) if r.status_code == 200 else None

    def delete(self, namespace: str, id: str) -> bool:
        deleted: bool = self._call("DELETE", self._path(namespace, id)).status_code == 200
        return deleted

    def recall(self, q: RecallQuery) -> list[Record]:
        r = self._call("POST", "/v1/recall", json=q.model_dump(mode="json"))
        r.raise_for_status()
        return [Record.model_validate(x) for x in r.json()["records"]]

    def ping(self) -> None:
        self._call("GET", "/healthz")
