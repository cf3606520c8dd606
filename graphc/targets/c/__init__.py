"""The C target: renders the kernel Program as C with OpenMP (templates/c/), builds it with gcc
into the content-addressed cache, loads it with cffi (loader.py), calls it through gc_dispatch
(fastcall.py), and exports functions as a standalone library (aot.py)."""
