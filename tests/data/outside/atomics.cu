// Atomics in grid-stride loops, as people write them (issue 31: reorder_cp across a relaxed
// atomic). Not in the corpus.
//   nvcc -ptx -arch=sm_80 -O3 -lineinfo atomics.cu -o atomics.ptx

// A global histogram of bytes: the next byte's load may rise above this one's atomicAdd,
// which writes another buffer.
extern "C" __global__ void hist_global(const unsigned char* __restrict__ in,
                                       unsigned int* __restrict__ bins, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        atomicAdd(&bins[in[i]], 1u);
}

// The atomic writes the buffer the loop reads: the next load must stay below it.
extern "C" __global__ void self_scatter(int* y, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        atomicAdd(&y[(i + 1) % n], y[i] & 1);
}
