"""The artifact cache as a target sees it (shared by the C and CUDA targets): the key of a graph,
the record of a compiled library, and the executable a record loads, so that a warm compile in
a new process skips optimization, lowering, rendering and the build and only loads a library.

A target that mixes this in says where its libraries live (`library_area`, as given to
cache.cached_library), what else its key depends on (`cache_variant`), and how a record becomes
its executable (`executable_from_artifact`)."""
import os

from ...config import config
from ..base import Built
from . import artifact_record, artifacts
from .cache_trust import file_digest, private_dir
from .loader import library_matches


class ArtifactCacheTarget:
    library_area = ()  # below GRAPHC_CACHE_DIR: where cached_library put the target's libraries

    def cache_variant(self):
        """What, besides the graph and the settings, changes the library (e.g. the device's
        architecture); part of the key."""
        return ""

    def cache_key(self, fgraph, opt_level):
        variant = self.cache_variant()
        backend = f"{self.name} {variant}" if variant else self.name
        return artifacts.graph_signature(fgraph, backend, opt_level)

    def load_artifact(self, key):
        return artifacts.load(key)

    def save_artifact(self, key, record):
        try:
            text = artifact_record.encode(**record)
        except artifact_record.Unencodable:  # an output size the record cannot hold as data
            return
        artifacts.save(key, text)

    def artifact_record(self, executable):
        return {"layout": executable.layout,
                "lib_key": os.path.basename(executable.lib_path)[:-len(".so")],
                "lib_sha256": executable.lib_sha256, "links": executable.links,
                "loads": list(getattr(executable, "loads", ()))}

    def from_artifact(self, record, graph, rebuild):
        key = record["lib_key"]
        lib_path = os.path.join(private_dir(*self.library_area, key[:2]), f"{key}.so")
        if not library_matches(lib_path, record["lib_sha256"], record["links"]):
            return None
        return self.executable_from_artifact(record, lib_path, graph, rebuild)

    def executable_from_artifact(self, record, lib_path, graph, rebuild):
        raise NotImplementedError


def built_library(lib_path, hit, digest, link):
    """The Built of a cached library, with what its artifact record checks: the library's digest
    and those of the linked libraries in the cache (the package's own copy is trusted as the
    package is)."""
    built = Built(lib_path, hit)
    built.sha256 = digest
    cache_root = os.path.abspath(config.cache_dir) + os.sep
    built.links = [(path, file_digest(path)) for path in link
                   if os.path.abspath(path).startswith(cache_root)]
    return built
