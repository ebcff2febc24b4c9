// Seven kernels in the everyday styles of issue 31 (not in the corpus; no transform was
// written against them): a grid-stride saxpy loop, a half-precision axpy with a __half scalar,
// a shared-memory block reduction over a grid-stride accumulation, a padded shared-memory
// transpose, a row softmax, a 5-point stencil and a shared-memory histogram with atomics.
//   nvcc -ptx -arch=sm_80 -O3 -lineinfo everyday.cu -o everyday.ptx

#include <cuda_fp16.h>

extern "C" __global__ void gs_saxpy(int n, float a, const float* __restrict__ x,
                                    float* __restrict__ y)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        y[i] = a * x[i] + y[i];
}

extern "C" __global__ void haxpy_half(int n, __half a, const __half* __restrict__ x,
                                      __half* __restrict__ y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __hfma(a, x[i], y[i]);
}

// One partial sum per block: each thread accumulates a grid-stride slice, then a tree in
// shared memory (block 256).
extern "C" __global__ void block_sum(const float* __restrict__ in, float* __restrict__ out, int n)
{
    __shared__ float s[256];
    float sum = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        sum += in[i];
    s[threadIdx.x] = sum;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// The classic padded-tile transpose: 32x32 tile, 32x8 threads, a column of padding.
#define TILE 32
#define ROWS 8
extern "C" __global__ void transpose_padded(const float* __restrict__ in, float* __restrict__ out,
                                            int width, int height)
{
    __shared__ float tile[TILE][TILE + 1];
    int x = blockIdx.x * TILE + threadIdx.x;
    int y = blockIdx.y * TILE + threadIdx.y;
    for (int j = 0; j < TILE; j += ROWS)
        if (x < width && y + j < height) tile[threadIdx.y + j][threadIdx.x] = in[(y + j) * width + x];
    __syncthreads();
    x = blockIdx.y * TILE + threadIdx.x;
    y = blockIdx.x * TILE + threadIdx.y;
    for (int j = 0; j < TILE; j += ROWS)
        if (x < height && y + j < width) out[(y + j) * height + x] = tile[threadIdx.x][threadIdx.y + j];
}

// One block (128 threads) per row: max, sum of exponentials, then the normalised row.
extern "C" __global__ void row_softmax(const float* __restrict__ in, float* __restrict__ out,
                                       int cols)
{
    __shared__ float red[128];
    const float* row = in + (size_t)blockIdx.x * cols;
    float* dst = out + (size_t)blockIdx.x * cols;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, row[c]);
    red[threadIdx.x] = m;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
        __syncthreads();
    }
    m = red[0];
    __syncthreads();
    float sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += __expf(row[c] - m);
    red[threadIdx.x] = sum;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
        __syncthreads();
    }
    float inv = 1.0f / red[0];
    for (int c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = __expf(row[c] - m) * inv;
}

// 5-point Jacobi step on the interior of an nx x ny grid (16x16 threads).
extern "C" __global__ void stencil5(const float* __restrict__ in, float* __restrict__ out, int nx,
                                    int ny)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x > 0 && y > 0 && x < nx - 1 && y < ny - 1) {
        int i = y * nx + x;
        out[i] = 0.25f * (in[i - 1] + in[i + 1] + in[i - nx] + in[i + nx]);
    }
}

// 256-bin byte histogram: per-block bins in shared memory, a grid-stride loop of shared
// atomics, then one global atomic per bin (block 256).
extern "C" __global__ void histogram_smem(const unsigned char* __restrict__ data,
                                          unsigned int* __restrict__ bins, int n)
{
    __shared__ unsigned int local[256];
    local[threadIdx.x] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        atomicAdd(&local[data[i]], 1u);
    __syncthreads();
    if (local[threadIdx.x]) atomicAdd(&bins[threadIdx.x], local[threadIdx.x]);
}
