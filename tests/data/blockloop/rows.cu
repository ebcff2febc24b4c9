// Row-per-block kernels written the way people write them (issue 31, block-stride loops):
// one block per row, `for (c = threadIdx.x; c < cols; c += blockDim.x)`.
// nvcc -ptx -arch=sm_80 -O3 rows.cu -o rows.ptx

// y[r][c] = x[r][c] * scale + bias: elementwise.
extern "C" __global__ void row_scale_bias(const float* __restrict__ x, float* __restrict__ y,
                                          int cols, float scale, float bias)
{
    const float* xr = x + (size_t)blockIdx.x * cols;
    float* yr = y + (size_t)blockIdx.x * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = xr[c] * scale + bias;
}

// Same, 32-bit row index arithmetic: y[row * cols + c].
extern "C" __global__ void row_axpb_int(const float* __restrict__ x, float* __restrict__ y,
                                        int cols, float a)
{
    int row = blockIdx.x;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) y[row * cols + c] = a * x[row * cols + c] + 1.0f;
}

// In place: x[r][c] *= s (the stored array is the loaded one, at the same element).
extern "C" __global__ void row_scale_inplace(float* x, int cols, float s)
{
    float* xr = x + (size_t)blockIdx.x * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) xr[c] = xr[c] * s;
}

// Row max through a shared tree.
extern "C" __global__ void row_max(const float* __restrict__ x, float* __restrict__ out, int cols)
{
    __shared__ float red[128];
    const float* xr = x + (size_t)blockIdx.x * cols;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, xr[c]);
    red[threadIdx.x] = m;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + s]);
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = red[0];
}

// Row sum (float) through a shared tree.
extern "C" __global__ void row_sum(const float* __restrict__ x, float* __restrict__ out, int cols)
{
    __shared__ float red[128];
    const float* xr = x + (size_t)blockIdx.x * cols;
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
    red[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) red[threadIdx.x] += red[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = red[0];
}

// Row sum (int) through a shared tree.
extern "C" __global__ void row_isum(const int* __restrict__ x, int* __restrict__ out, int cols)
{
    __shared__ int red[128];
    const int* xr = x + (size_t)blockIdx.x * cols;
    int s = 0;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
    red[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) red[threadIdx.x] += red[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = red[0];
}

// Forward difference: reads the neighbour element c+1.
extern "C" __global__ void row_diff(const float* __restrict__ x, float* __restrict__ y, int cols)
{
    const float* xr = x + (size_t)blockIdx.x * (cols + 1);
    float* yr = y + (size_t)blockIdx.x * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = xr[c + 1] - xr[c];
}

// No __restrict__ and not read-only in the spec: x may alias y.
extern "C" __global__ void row_copy_alias(const float* x, float* y, int cols)
{
    const float* xr = x + (size_t)blockIdx.x * cols;
    float* yr = y + (size_t)blockIdx.x * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = 2.0f * xr[c];
}

// Stride depends on the thread: not a block-stride loop.
extern "C" __global__ void row_odd_stride(const float* __restrict__ x, float* __restrict__ y,
                                          int cols)
{
    const float* xr = x + (size_t)blockIdx.x * cols;
    float* yr = y + (size_t)blockIdx.x * cols;
    int step = blockDim.x + (threadIdx.x & 1);
    for (int c = threadIdx.x; c < cols; c += step) yr[c] = xr[c] + 1.0f;
}

#include <cuda_fp16.h>

// Half-precision row scale: y[r][c] = x[r][c] * s (8 halves per 16-byte vector).
extern "C" __global__ void row_hscale(const __half* __restrict__ x, __half* __restrict__ y,
                                      int cols, float s)
{
    const __half* xr = x + (size_t)blockIdx.x * cols;
    __half* yr = y + (size_t)blockIdx.x * cols;
    __half hs = __float2half(s);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = __hmul(xr[c], hs);
}

// Rows strided over the grid: the column loop sits inside the row loop.
extern "C" __global__ void rows_grid_scale(const float* __restrict__ x, float* __restrict__ y,
                                           int rows, int cols, float s)
{
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = x + (size_t)r * cols;
        float* yr = y + (size_t)r * cols;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = xr[c] * s;
    }
}
