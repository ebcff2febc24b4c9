// reduce(BLOCK, IPT, T, MODE, ROWS): float sum of a vector (ROWS=0) or of each row of a matrix
// (ROWS=1), accumulated in fp32 and combined across blocks with atomicAdd.
//
// ROWS=0: out[0] += sum(x[0..n)); a 1-D grid-stride loop, each thread loading IPT elements
//         BLOCK apart per step (coalesced), guarded against the ragged tail.
// ROWS=1: out[r] += sum(x[r, 0..cols)); a 2-D grid, blockIdx.y is the row, blockIdx.x strides
//         over the columns.
// The block combines its threads' partial sums in one of three ways (MODE):
//   0  warp shuffles (__shfl_down_sync), one partial per warp in shared memory, first warp again;
//   1  the classic shared-memory tree down to 64 values, then a __shfl_xor_sync butterfly;
//   2  warp shuffles, then one shared-memory atomicAdd per warp, one global atomicAdd per block.
// The output must be zero before the launch (the spec passes it as an `inout` of zeros).
//
// Build one variant: nvcc -ptx -arch=sm_80 -O3 -DBLOCK=256 -DIPT=4 -DHALF=0 -DMODE=0 -DROWS=0
//                    -DNAME=reduce_sum_f32_b256_i4_shfl reduce.cu

#include <cuda_fp16.h>

#if !defined(BLOCK) || !defined(IPT) || !defined(HALF) || !defined(MODE) || !defined(ROWS) || \
    !defined(NAME)
#error "define BLOCK, IPT, HALF, MODE, ROWS and NAME"
#endif

#if HALF
typedef __half T;
__device__ __forceinline__ float load(const T* p) { return __half2float(*p); }
#else
typedef float T;
__device__ __forceinline__ float load(const T* p) { return *p; }
#endif

#if BLOCK < 64 || BLOCK % 32
#error "BLOCK must be a multiple of 32, at least 64"
#endif
#define WARPS (BLOCK / 32)

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        v += __shfl_down_sync(0xffffffffu, v, off);
    }
    return v;
}

// The block's sum, valid in thread 0.
__device__ __forceinline__ float block_sum(float v)
{
    const int lane = threadIdx.x & 31;
#if MODE == 0
    const int warp = threadIdx.x >> 5;
    __shared__ float partial[WARPS];
    v = warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < WARPS ? partial[lane] : 0.0f;
        v = warp_sum(v);
    }
    return v;
#elif MODE == 1
    __shared__ float s[BLOCK];
    s[threadIdx.x] = v;
    __syncthreads();
#pragma unroll
    for (int stride = BLOCK / 2; stride >= 64; stride >>= 1) {
        if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x < 32) {
        v = s[lane] + s[lane + 32];
#pragma unroll
        for (int mask = 16; mask > 0; mask >>= 1) {
            v += __shfl_xor_sync(0xffffffffu, v, mask);
        }
    }
    return v;
#else
    __shared__ float total;
    if (threadIdx.x == 0) total = 0.0f;
    __syncthreads();
    v = warp_sum(v);
    if (lane == 0) atomicAdd(&total, v);
    __syncthreads();
    return total;
#endif
}

#if ROWS == 0
extern "C" __global__ void NAME(const T* x, float* out, int n)
{
    float acc = 0.0f;
    const int stride = gridDim.x * BLOCK * IPT;
    for (int base = blockIdx.x * BLOCK * IPT + threadIdx.x; base < n; base += stride) {
#pragma unroll
        for (int k = 0; k < IPT; ++k) {
            const int i = base + k * BLOCK;
            if (i < n) acc += load(x + i);
        }
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) atomicAdd(out, acc);
}
#else
extern "C" __global__ void NAME(const T* x, float* out, int rows, int cols)
{
    const int row = blockIdx.y;
    if (row >= rows) return;
    const T* xr = x + (size_t)row * cols;
    float acc = 0.0f;
    const int stride = gridDim.x * BLOCK * IPT;
    for (int base = blockIdx.x * BLOCK * IPT + threadIdx.x; base < cols; base += stride) {
#pragma unroll
        for (int k = 0; k < IPT; ++k) {
            const int c = base + k * BLOCK;
            if (c < cols) acc += load(xr + c);
        }
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) atomicAdd(out + row, acc);
}
#endif
