// Two user kernels for the Chronos tutorial (docs/kernels.md).
//
// extern "C" keeps the PTX entry names plain (vadd, rowsum) instead of C++-mangled
// (_Z4vaddPKfS0_Pfi). Regenerate the PTX with:
//   nvcc -ptx -arch=sm_80 -O3 mykernels.cu -o mykernels.ptx

// c = a + b, one element per thread, guarded for the ragged last block.
extern "C" __global__ void vadd(const float* a, const float* b, float* c, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        c[i] = a[i] + b[i];
    }
}

// out[r] = sum of row r of a rows x cols matrix: one 256-thread block per row, a strided
// per-thread sum, then a shared-memory tree reduction. Launch with blockDim.x == 256.
extern "C" __global__ void rowsum(const float* x, float* out, int cols)
{
    __shared__ float part[256];
    const float* row = x + (size_t)blockIdx.x * cols;
    float acc = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        acc += row[j];
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            part[threadIdx.x] += part[threadIdx.x + s];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        out[blockIdx.x] = part[0];
    }
}
