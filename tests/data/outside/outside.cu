// Kernels from outside the corpus, written the way people write them (textbook CSR SpMV,
// a shared-tile 1-D convolution with halo, a warp-shuffle block scan, a bf16 GELU, a 3-D
// 7-point stencil, a double-precision sum through dynamic shared memory, a templated
// (mangled) __ldg transpose). tests/test_outside_kernels.py holds every transform to their
// semantics. Compiled with -lineinfo, so the PTX carries .file/.loc directives too:
//   nvcc -ptx -arch=sm_80 -O3 -lineinfo outside.cu -o outside.ptx

#include <cuda_bf16.h>

// CSR sparse matrix-vector product, one thread per row (the textbook "scalar" kernel).
extern "C" __global__ void spmv_csr(const int* __restrict__ rowptr, const int* __restrict__ col,
                                    const float* __restrict__ val, const float* __restrict__ x,
                                    float* __restrict__ y, int rows)
{
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < rows) {
        float acc = 0.0f;
        for (int j = rowptr[r]; j < rowptr[r + 1]; ++j) acc += val[j] * x[col[j]];
        y[r] = acc;
    }
}

// 1-D convolution with a shared tile and halo, radius R, block 128.
#define R 3
#define B 128
extern "C" __global__ void conv1d(const float* in, const float* w, float* out, int n)
{
    __shared__ float tile[B + 2 * R];
    int g = blockIdx.x * B + threadIdx.x;
    tile[threadIdx.x + R] = g < n ? in[g] : 0.0f;
    if (threadIdx.x < R) {
        int l = g - R, h = g + B;
        tile[threadIdx.x] = l >= 0 ? in[l] : 0.0f;
        tile[threadIdx.x + B + R] = h < n ? in[h] : 0.0f;
    }
    __syncthreads();
    if (g < n) {
        float s = 0.0f;
#pragma unroll
        for (int k = -R; k <= R; ++k) s += w[k + R] * tile[threadIdx.x + R + k];
        out[g] = s;
    }
}

// Block-wide inclusive scan of ints with warp shuffles (block 256).
extern "C" __global__ void scan_block(const int* in, int* out, int n)
{
    __shared__ int warp_sums[8];
    int g = blockIdx.x * 256 + threadIdx.x;
    int v = g < n ? in[g] : 0;
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    for (int o = 1; o < 32; o <<= 1) {
        int t = __shfl_up_sync(0xffffffff, v, o);
        if (lane >= o) v += t;
    }
    if (lane == 31) warp_sums[wid] = v;
    __syncthreads();
    if (wid == 0) {
        int s = lane < 8 ? warp_sums[lane] : 0;
        for (int o = 1; o < 8; o <<= 1) {
            int t = __shfl_up_sync(0xffffffff, s, o);
            if (lane >= o) s += t;
        }
        if (lane < 8) warp_sums[lane] = s;
    }
    __syncthreads();
    if (wid > 0) v += warp_sums[wid - 1];
    if (g < n) out[g] = v;
}

// bf16 GELU (tanh form), grid-stride.
extern "C" __global__ void gelu_bf16(const __nv_bfloat16* x, __nv_bfloat16* y, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float v = __bfloat162float(x[i]);
        float t = tanhf(0.7978845608f * (v + 0.044715f * v * v * v));
        y[i] = __float2bfloat16(0.5f * v * (1.0f + t));
    }
}

// 3-D 7-point stencil, 2-D thread grid marching in z.
extern "C" __global__ void stencil3d(const float* __restrict__ in, float* __restrict__ out,
                                     int nx, int ny, int nz)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x < 1 || y < 1 || x >= nx - 1 || y >= ny - 1) return;
    size_t sxy = (size_t)nx * ny;
    for (int z = 1; z < nz - 1; ++z) {
        size_t i = z * sxy + (size_t)y * nx + x;
        out[i] = 0.4f * in[i] + 0.1f * (in[i - 1] + in[i + 1] + in[i - nx] + in[i + nx] +
                                        in[i - sxy] + in[i + sxy]);
    }
}

// dynamic shared memory tiled sum with a loop containing __syncthreads; double precision
extern "C" __global__ void dsum(const double* x, double* out, int n)
{
    extern __shared__ double buf[];
    double acc = 0.0;
    for (int base = blockIdx.x * blockDim.x; base < n; base += gridDim.x * blockDim.x) {
        int i = base + threadIdx.x;
        buf[threadIdx.x] = i < n ? x[i] : 0.0;
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int k = 0; k < blockDim.x; ++k) acc += buf[k];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = acc;
}

// templated (mangled) transpose with __ldg, 2-D grid, 32x8 tiles
template <typename T>
__global__ void transpose_ldg(const T* __restrict__ in, T* __restrict__ out, int w, int h)
{
    __shared__ T tile[32][33];
    int x = blockIdx.x * 32 + threadIdx.x;
    int y = blockIdx.y * 32 + threadIdx.y;
    for (int j = 0; j < 32; j += 8)
        if (x < w && y + j < h) tile[threadIdx.y + j][threadIdx.x] = __ldg(&in[(y + j) * w + x]);
    __syncthreads();
    x = blockIdx.y * 32 + threadIdx.x;
    y = blockIdx.x * 32 + threadIdx.y;
    for (int j = 0; j < 32; j += 8)
        if (x < h && y + j < w) out[(y + j) * h + x] = tile[threadIdx.x][threadIdx.y + j];
}
template __global__ void transpose_ldg<float>(const float*, float*, int, int);
