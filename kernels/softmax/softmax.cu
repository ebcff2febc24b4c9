// softmax(MODE, BLOCK, IPT, FAST, T): y[r, :] = softmax(x[r, :]) for a rows x cols matrix,
// computed in fp32 in three passes over the row (max, sum of exponentials, normalised write).
//
// MODE=0: one warp per row; the block is (32, BLOCK / 32), so threadIdx.y picks the warp's row,
//         and the grid strides over the rows. Max and sum are __shfl_xor_sync butterflies.
// MODE=1: one block of BLOCK threads per row (grid-stride over rows); warp butterflies, then the
//         per-warp results through shared memory.
// Each thread handles IPT elements per step, 32 (MODE 0) or BLOCK (MODE 1) apart, guarded, so
// any cols works. FAST=1 uses __expf and __fdividef (ex2.approx and rcp/div approximations);
// FAST=0 uses expf and an IEEE division. HALF=1: fp16 input and output.
//
// Build one variant: nvcc -ptx -arch=sm_80 -O3 -DMODE=1 -DBLOCK=256 -DIPT=4 -DFAST=0 -DHALF=0
//                    -DNAME=softmax_block_f32_b256_i4 softmax.cu

#include <cuda_fp16.h>

#if !defined(MODE) || !defined(BLOCK) || !defined(IPT) || !defined(FAST) || !defined(HALF) || \
    !defined(NAME)
#error "define MODE, BLOCK, IPT, FAST, HALF and NAME"
#endif
#if BLOCK % 32
#error "BLOCK must be a multiple of 32"
#endif

#if HALF
typedef __half T;
__device__ __forceinline__ float load(const T* p) { return __half2float(*p); }
__device__ __forceinline__ void store(T* p, float v) { *p = __float2half_rn(v); }
#else
typedef float T;
__device__ __forceinline__ float load(const T* p) { return *p; }
__device__ __forceinline__ void store(T* p, float v) { *p = v; }
#endif

#if FAST
#define EXP(v) __expf(v)
#define RECIP(v) __fdividef(1.0f, v)
#else
#define EXP(v) expf(v)
#define RECIP(v) (1.0f / (v))
#endif

#define WARPS (BLOCK / 32)

__device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int mask = 16; mask > 0; mask >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, mask));
    }
    return v;
}

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int mask = 16; mask > 0; mask >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, mask);
    }
    return v;
}

#if MODE == 0
#define LANE threadIdx.x
#define STEP 32
#define ROW0 (blockIdx.x * blockDim.y + threadIdx.y)
#define ROW_STRIDE (gridDim.x * blockDim.y)
#define ALL_MAX(v) warp_max(v)
#define ALL_SUM(v) warp_sum(v)
#else
#define LANE threadIdx.x
#define STEP BLOCK
#define ROW0 blockIdx.x
#define ROW_STRIDE gridDim.x
#define ALL_MAX(v) block_max(v)
#define ALL_SUM(v) block_sum(v)

__shared__ float partial[WARPS];

// Every thread gets the block's result; the trailing barrier frees `partial` for reuse.
__device__ __forceinline__ float block_max(float v)
{
    v = warp_max(v);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (threadIdx.x & 31) < WARPS ? partial[threadIdx.x & 31] : -INFINITY;
    v = warp_max(v);
    __syncthreads();
    return v;
}

__device__ __forceinline__ float block_sum(float v)
{
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (threadIdx.x & 31) < WARPS ? partial[threadIdx.x & 31] : 0.0f;
    v = warp_sum(v);
    __syncthreads();
    return v;
}
#endif

extern "C" __global__ void NAME(const T* x, T* y, int rows, int cols)
{
    for (int row = ROW0; row < rows; row += ROW_STRIDE) {
        const T* xr = x + (size_t)row * cols;
        T* yr = y + (size_t)row * cols;

        float m = -INFINITY;
        for (int base = LANE; base < cols; base += STEP * IPT) {
#pragma unroll
            for (int k = 0; k < IPT; ++k) {
                const int c = base + k * STEP;
                if (c < cols) m = fmaxf(m, load(xr + c));
            }
        }
        m = ALL_MAX(m);

        float s = 0.0f;
        for (int base = LANE; base < cols; base += STEP * IPT) {
#pragma unroll
            for (int k = 0; k < IPT; ++k) {
                const int c = base + k * STEP;
                if (c < cols) s += EXP(load(xr + c) - m);
            }
        }
        const float inv = RECIP(ALL_SUM(s));

        for (int base = LANE; base < cols; base += STEP * IPT) {
#pragma unroll
            for (int k = 0; k < IPT; ++k) {
                const int c = base + k * STEP;
                if (c < cols) store(yr + c, EXP(load(xr + c) - m) * inv);
            }
        }
    }
}
