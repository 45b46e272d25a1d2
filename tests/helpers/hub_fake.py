"""One in-memory stand-in for the ``HfApi`` endpoints the package calls (patched onto ``HfApi``), shared by the Hub
push tests and the Hub results-store tests."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest.mock import patch

from huggingface_hub import HfApi, RepoUrl
from huggingface_hub.hf_api import RepoFile, RepoFolder
from huggingface_hub.utils.sha import git_hash

ENDPOINTS = ("create_repo", "create_commit", "list_repo_files", "list_repo_tree", "hf_hub_download")


class FakeHub:
    """Repositories as dicts of path -> bytes; every create_repo / create_commit call recorded.

    ``fail_commit``: make the next commits raise ``ConnectionError`` (the Hub unreachable). ``list_repo_tree`` returns
    ``RepoFile``/``RepoFolder`` objects built as the real client builds them, with git blob ids (sha1 of
    ``blob <size>\\0<bytes>``, what the Hub reports for files not in LFS); ``downloads`` counts ``hf_hub_download``
    calls per path. Folder ids are placeholders."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.files: dict[str, bytes] = {}  # the files of the (single) results repo, latest state
        self.commits: list[dict] = []
        self.repos: list[tuple] = []
        self.fail_commit = False
        self.downloads: dict[str, int] = {}

    def create_repo(self, api, repo_id, **kw):
        self.repos.append({"repo_id": repo_id, **kw})
        repo_type = kw.get("repo_type")
        prefix = "" if repo_type in (None, "model") else f"{repo_type}s/"
        return RepoUrl(f"https://huggingface.co/{prefix}{repo_id}")

    def create_commit(self, api, repo_id, operations, *, commit_message="", repo_type=None, **kw):
        if self.fail_commit:
            raise ConnectionError("Hub unreachable (simulated)")
        files = {}
        for op in operations:
            source = op.path_or_fileobj
            files[op.path_in_repo] = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
        self.commits.append({"repo_id": repo_id, "repo_type": repo_type, "message": commit_message,
                             "paths": list(files), "files": files, **kw})
        self.files.update(files)
        return f"https://huggingface.co/{repo_id}/commit/{len(self.commits) - 1}"

    def list_repo_files(self, api, repo_id, *, repo_type=None, **kw):
        return list(self.files)

    def list_repo_tree(self, api, repo_id, path_in_repo=None, *, recursive=False, repo_type=None, **kw):
        prefix = f"{path_in_repo.strip('/')}/" if path_in_repo else ""
        folders = set()
        for name in sorted(self.files):
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix):].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                data = self.files[name]
                yield RepoFile(path=name, size=len(data), oid=git_hash(data))
        for folder in sorted(folders):
            yield RepoFolder(path=folder, oid=git_hash(folder.encode()))

    def hf_hub_download(self, api, repo_id, filename, *, repo_type=None, **kw):
        self.downloads[filename] = self.downloads.get(filename, 0) + 1
        target = self.root / repo_id.replace("/", "--") / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.files[filename])
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
