"""One in-memory stand-in for the ``HfApi`` endpoints the package calls (patched onto ``HfApi``), shared by the Hub
push tests and the Hub results-store tests."""

from __future__ import annotations

import hashlib
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest.mock import patch

import httpx2
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, RepoUrl, constants
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.hf_api import CommitInfo, DatasetInfo, RepoFile, RepoFolder
from huggingface_hub.utils import hf_raise_for_status
from huggingface_hub.utils.sha import git_hash

ENDPOINTS = ("create_repo", "create_commit", "list_repo_files", "list_repo_tree", "hf_hub_download", "repo_info")
#: What the Hub answers (HTTP 412) to a commit whose ``parent_commit`` is no longer the branch head.
CONFLICT = "A commit has happened since. Please refresh and try again."
RESULTS_REPO = "org/elue-results"


def repo_url(repo_id: str, repo_type: str | None) -> str:
    prefix = "" if repo_type in (None, "model") else f"{repo_type}s/"
    return f"https://huggingface.co/{prefix}{repo_id}"


def hub_error(status: int, message: str, url: str, code: str | None = None):
    """Raise what ``huggingface_hub`` raises for this HTTP answer (built by its own ``hf_raise_for_status``)."""
    headers = {"X-Error-Code": code} if code else {}
    response = httpx2.Response(status, json={"error": message}, headers=headers, request=httpx2.Request("POST", url))
    hf_raise_for_status(response, endpoint_name="commit")


class FakeRepo:
    """One repository's main branch: its files now, and every commit's snapshot by sha. A commit is atomic, as on
    the Hub (replicas in threads may commit at once)."""

    def __init__(self, repo_id: str):
        self.repo_id = repo_id
        self._lock = threading.RLock()
        self.files: dict[str, bytes] = {}
        self.snapshots: dict[str, dict[str, bytes]] = {}
        self._head = self._record()

    def _record(self) -> str:
        sha = hashlib.sha1(f"{self.repo_id}:{len(self.snapshots)}:{sorted(self.files)}".encode()).hexdigest()
        self.snapshots[sha] = dict(self.files)
        self._head = sha
        return sha

    @property
    def head(self) -> str:
        """The sha of ``main``; files changed directly in ``files`` (an edit on the website) count as one commit."""
        with self._lock:
            if self.files != self.snapshots[self._head]:
                self._record()
            return self._head

    def snapshot(self, revision: str | None) -> dict[str, bytes]:
        sha = self.head if revision in (None, "main") else revision
        if sha not in self.snapshots:
            hub_error(404, "Invalid rev id", f"https://huggingface.co/api/datasets/{self.repo_id}/tree/{revision}",
                      "RevisionNotFound")
        return self.snapshots[sha]

    def commit(self, adds: dict[str, bytes], deletes: list[str], parent_commit: str | None) -> str | None:
        """Apply one commit as the Hub does; None when the client would send nothing (every file unchanged)."""
        with self._lock:
            return self._commit(adds, deletes, parent_commit)

    def _commit(self, adds: dict[str, bytes], deletes: list[str], parent_commit: str | None) -> str | None:
        head = self.head
        # the client drops additions whose content the branch already has (compared at the head, not the parent)
        changed = {p: b for p, b in adds.items() if p in deletes or self.files.get(p) != b}
        if not changed and not deletes:
            return None
        if parent_commit is not None and not head.startswith(parent_commit.lower()):
            hub_error(412, CONFLICT, f"https://huggingface.co/api/datasets/{self.repo_id}/commit/main")
        for path in deletes:
            if path not in self.files:
                hub_error(404, "A file with this name doesn't exist", f"https://huggingface.co/api/datasets/"
                          f"{self.repo_id}/commit/main", "EntryNotFound")
            del self.files[path]
        self.files.update(changed)
        return self._record()


class FakeHub:
    """Repositories with a ``main`` branch of commits (shas, snapshots); every create_repo / create_commit recorded.

    ``files`` is the results repo's latest state; a test that edits it directly makes a commit there, as an edit on
    the website would. ``create_commit`` behaves like the client against the real Hub: additions whose content is
    already on the branch are dropped, a commit left empty is not made (and ``parent_commit`` not checked), a
    ``parent_commit`` that is not the branch head is refused with the HTTP 412 ``HfHubHTTPError`` the client raises
    (:data:`CONFLICT`), deleting a missing file raises ``RemoteEntryNotFoundError``; it returns a ``CommitInfo`` whose
    ``oid`` is the new head. ``fail_commit``: make the next commits raise ``ConnectionError`` (the Hub unreachable).
    ``list_repo_tree`` returns ``RepoFile``/``RepoFolder`` objects built as the real client builds them, with git blob
    ids (sha1 of ``blob <size>\\0<bytes>``, what the Hub reports for files not in LFS); ``downloads`` counts
    ``hf_hub_download`` calls per path. Folder ids are placeholders. ``before_commit``: a callable the next commit runs
    first (a race: another writer's commit lands between a replica's read and its commit)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.branches: dict[str, FakeRepo] = {RESULTS_REPO: FakeRepo(RESULTS_REPO)}
        self.commits: list[dict] = []
        self.repos: list[tuple] = []
        self.fail_commit = False
        self.downloads: dict[str, int] = {}
        self.conflicts = 0  # commits refused with HTTP 412
        self.before_commit = None  # called once by the next commit: another writer's commit landing just before it

    @property
    def files(self) -> dict[str, bytes]:
        return self.branches[RESULTS_REPO].files

    def repo(self, repo_id: str) -> FakeRepo:
        return self.branches.setdefault(repo_id, FakeRepo(repo_id))

    def create_repo(self, api, repo_id, **kw):
        self.repos.append({"repo_id": repo_id, **kw})
        return RepoUrl(repo_url(repo_id, kw.get("repo_type")))

    def create_commit(self, api, repo_id, operations, *, commit_message="", repo_type=None, parent_commit=None, **kw):
        if parent_commit is not None and not constants.REGEX_COMMIT_OID.fullmatch(parent_commit):
            raise ValueError("`parent_commit` is not a valid commit OID.")  # checked by the client, as here
        if self.fail_commit:
            raise ConnectionError("Hub unreachable (simulated)")
        if self.before_commit is not None:
            interloper, self.before_commit = self.before_commit, None
            interloper()
        files, deletes = {}, []
        for op in operations:
            if isinstance(op, CommitOperationDelete):
                deletes.append(op.path_in_repo)
            elif isinstance(op, CommitOperationAdd):
                source = op.path_or_fileobj
                files[op.path_in_repo] = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
        branch = self.repo(repo_id)
        try:
            sha = branch.commit(files, deletes, parent_commit)
        except HfHubHTTPError as err:
            self.conflicts += err.response.status_code == 412
            raise
        if sha is not None:
            self.commits.append({"repo_id": repo_id, "repo_type": repo_type, "message": commit_message,
                                 "paths": list(files), "files": files, "deleted": deletes, "sha": sha,
                                 "parent_commit": parent_commit, **kw})
        head = sha or branch.head
        return CommitInfo(commit_url=f"{repo_url(repo_id, repo_type)}/commit/{head}", commit_message=commit_message,
                          commit_description="", oid=head)

    def repo_info(self, api, repo_id, *, repo_type=None, revision=None, **kw):
        return DatasetInfo(id=repo_id, sha=self.repo(repo_id).head, private=True)

    def list_repo_files(self, api, repo_id, *, repo_type=None, revision=None, **kw):
        return list(self.repo(repo_id).snapshot(revision))

    def list_repo_tree(self, api, repo_id, path_in_repo=None, *, recursive=False, repo_type=None, revision=None,
                       **kw):
        files = self.repo(repo_id).snapshot(revision)
        prefix = f"{path_in_repo.strip('/')}/" if path_in_repo else ""
        folders = set()
        for name in sorted(files):
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix):].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                yield RepoFile(path=name, size=len(files[name]), oid=git_hash(files[name]))
        for folder in sorted(folders):
            yield RepoFolder(path=folder, oid=git_hash(folder.encode()))

    def hf_hub_download(self, api, repo_id, filename, *, repo_type=None, revision=None, **kw):
        files = self.repo(repo_id).snapshot(revision)
        if filename not in files:
            hub_error(404, "Entry not found", f"https://huggingface.co/datasets/{repo_id}/resolve/{revision}/"
                      f"{filename}", "EntryNotFound")
        self.downloads[filename] = self.downloads.get(filename, 0) + 1
        target = self.root / repo_id.replace("/", "--") / (revision or "main") / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{threading.get_ident()}.incomplete")
        partial.write_bytes(files[filename])
        partial.replace(target)  # atomic, as the client's download (replicas in threads may read one file at once)
        return str(target)

    def materialize(self, folder: Path, commit: int = -1) -> Path:
        """Write the files of one commit into ``folder``."""
        for name, data in self.commits[commit]["files"].items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        return folder

    @contextmanager
    def patched(self):
        """Route the ``HfApi`` endpoints to this fake while the block runs."""
        with ExitStack() as stack:
            for name in ENDPOINTS:
                method = getattr(self, name)
                stack.enter_context(patch.object(HfApi, name, lambda api, *a, _m=method, **kw: _m(api, *a, **kw)))
            yield self
