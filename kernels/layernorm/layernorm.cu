// layernorm(MODE, STATS, BLOCK, IPT, T): y[r, :] = (x[r, :] - mean) * rsqrt(var + eps) * gamma
// + beta over each row of a rows x cols matrix, statistics in fp32 (biased variance, eps 1e-5).
//
// MODE=0: one warp per row; the block is (32, BLOCK / 32), threadIdx.y picks the warp's row.
// MODE=1: one block of BLOCK threads per row; warp butterflies, then per-warp partials through
//         shared memory. Both stride over the rows with the grid.
// STATS=0: two passes (mean, then the mean squared deviation);
// STATS=1: Welford's one-pass update per thread, merged with Chan et al.'s pairwise formula;
// STATS=2: one pass of sum and sum of squares, var = E[x^2] - mean^2 (clamped at zero).
// Each thread handles IPT elements per step, 32 (MODE 0) or BLOCK (MODE 1) apart, guarded, so
// any cols works. HALF=1: x, gamma, beta and y are fp16.
//
// Build one variant: nvcc -ptx -arch=sm_80 -O3 -DMODE=1 -DSTATS=0 -DBLOCK=256 -DIPT=4 -DHALF=0
//                    -DNAME=layernorm_block_twopass_f32_b256_i4 layernorm.cu

#include <cuda_fp16.h>

#if !defined(MODE) || !defined(STATS) || !defined(BLOCK) || !defined(IPT) || !defined(HALF) || \
    !defined(NAME)
#error "define MODE, STATS, BLOCK, IPT, HALF and NAME"
#endif
#if BLOCK % 32
#error "BLOCK must be a multiple of 32"
#endif

#define EPS 1e-5f

#if HALF
typedef __half T;
__device__ __forceinline__ float load(const T* p) { return __half2float(*p); }
__device__ __forceinline__ void store(T* p, float v) { *p = __float2half_rn(v); }
#else
typedef float T;
__device__ __forceinline__ float load(const T* p) { return *p; }
__device__ __forceinline__ void store(T* p, float v) { *p = v; }
#endif

#define WARPS (BLOCK / 32)
#define LANE (threadIdx.x & 31)

#if MODE == 0
#define TID threadIdx.x
#define STEP 32
#define ROW0 (blockIdx.x * blockDim.y + threadIdx.y)
#define ROW_STRIDE (gridDim.x * blockDim.y)
#else
#define TID threadIdx.x
#define STEP BLOCK
#define ROW0 blockIdx.x
#define ROW_STRIDE gridDim.x
__shared__ float partial[3][WARPS];
#endif

#define FOR_EACH(c)                                                  \
    for (int base_ = TID; base_ < cols; base_ += STEP * IPT)         \
        _Pragma("unroll") for (int k_ = 0; k_ < IPT; ++k_)           \
            if (const int c = base_ + k_ * STEP; c < cols)

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int mask = 16; mask > 0; mask >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, mask);
    }
    return v;
}

// The sum over the row's threads, in every thread.
__device__ __forceinline__ float row_sum(float v)
{
    v = warp_sum(v);
#if MODE == 1
    if (LANE == 0) partial[0][threadIdx.x >> 5] = v;
    __syncthreads();
    v = LANE < WARPS ? partial[0][LANE] : 0.0f;
    v = warp_sum(v);
    __syncthreads();
#endif
    return v;
}

struct Welford {
    float n, mean, m2;
};

__device__ __forceinline__ Welford merge(Welford a, Welford b)
{
    const float n = a.n + b.n;
    if (n == 0.0f) return a;
    const float d = b.mean - a.mean;
    const float wb = b.n / n;
    return {n, a.mean + d * wb, a.m2 + b.m2 + d * d * a.n * wb};
}

__device__ __forceinline__ Welford warp_welford(Welford w)
{
#pragma unroll
    for (int mask = 16; mask > 0; mask >>= 1) {
        Welford o;
        o.n = __shfl_xor_sync(0xffffffffu, w.n, mask);
        o.mean = __shfl_xor_sync(0xffffffffu, w.mean, mask);
        o.m2 = __shfl_xor_sync(0xffffffffu, w.m2, mask);
        w = merge(w, o);
    }
    return w;
}

__device__ __forceinline__ Welford row_welford(Welford w)
{
    w = warp_welford(w);
#if MODE == 1
    if (LANE == 0) {
        partial[0][threadIdx.x >> 5] = w.n;
        partial[1][threadIdx.x >> 5] = w.mean;
        partial[2][threadIdx.x >> 5] = w.m2;
    }
    __syncthreads();
    if (LANE < WARPS) {
        w = {partial[0][LANE], partial[1][LANE], partial[2][LANE]};
    } else {
        w = {0.0f, 0.0f, 0.0f};
    }
    w = warp_welford(w);
    __syncthreads();
#endif
    return w;
}

extern "C" __global__ void NAME(const T* x, const T* gamma, const T* beta, T* y, int rows,
                                int cols)
{
    const float inv_cols = 1.0f / cols;
    for (int row = ROW0; row < rows; row += ROW_STRIDE) {
        const T* xr = x + (size_t)row * cols;
        T* yr = y + (size_t)row * cols;
        float mean, var;
#if STATS == 0
        float s = 0.0f;
        FOR_EACH(c) { s += load(xr + c); }
        mean = row_sum(s) * inv_cols;
        float q = 0.0f;
        FOR_EACH(c)
        {
            const float d = load(xr + c) - mean;
            q += d * d;
        }
        var = row_sum(q) * inv_cols;
#elif STATS == 1
        Welford w = {0.0f, 0.0f, 0.0f};
        FOR_EACH(c)
        {
            const float v = load(xr + c);
            w.n += 1.0f;
            const float d = v - w.mean;
            w.mean += d / w.n;
            w.m2 += d * (v - w.mean);
        }
        w = row_welford(w);
        mean = w.mean;
        var = w.m2 * inv_cols;
#else
        float s = 0.0f, q = 0.0f;
        FOR_EACH(c)
        {
            const float v = load(xr + c);
            s += v;
            q += v * v;
        }
        mean = row_sum(s) * inv_cols;
        var = fmaxf(row_sum(q) * inv_cols - mean * mean, 0.0f);
#endif
        const float rstd = rsqrtf(var + EPS);
        FOR_EACH(c) { store(yr + c, (load(xr + c) - mean) * rstd * load(gamma + c) + load(beta + c)); }
    }
}
