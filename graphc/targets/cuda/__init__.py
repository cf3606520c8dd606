"""The CUDA target: the same kernel Program as the C target, rendered from templates/cuda/ as one
.cu (the device kernels and a host launcher), built by nvcc (or, with GRAPHC_CUDA_EMULATE=1,
by g++ against graphc's CPU execution model) and run with device-resident shared variables.
GRAPHC_CUDA_RACECHECK=1 adds to the emulated build a checker of data races and out-of-bounds
accesses (templates/cuda/gc_cuda_racecheck.h)."""
