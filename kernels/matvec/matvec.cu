// matvec(KIND, HALF, BLOCK, ITEMS): y = A x for an M x N matrix, accumulating in float.
//
//   KIND 0  row      A row-major, one thread per row (ITEMS rows per thread, BLOCK apart)
//   KIND 1  col      A stored transposed (At[N][M]), one thread per row: coalesced loads
//   KIND 2  colsmem  as col, with x staged through shared memory BLOCK elements at a time
//   KIND 3  warp     A row-major, one warp per row (BLOCK/32 rows per block), each lane ITEMS
//                    columns per step, __shfl_down_sync tree reduction
//   KIND 4  warpvec  as warp, with float4 (fp32) or __half2 (fp16) loads: needs N % 4 == 0
//                    (fp32) or N % 2 == 0 (fp16)
//   KIND 5  colblk   as col, but register-blocked: each thread ITEMS adjacent rows, so every
//                    x[j] it loads feeds ITEMS accumulators (thread coarsening, Kirk & Hwu,
//                    "Programming Massively Parallel Processors", 4th ed., sec. 6.3); a block of
//                    rows wholly inside M unguarded, the ragged last block row by row
//
// HALF=1 stores A and x as __half (y stays float). Rows and columns are bounds-checked, so M and
// N are free except for the vector width of KIND 4.
//
// Build one variant:
//   nvcc -ptx -arch=sm_80 -O3 -DNAME=matvec_row_f32_128_1 -DKIND=0 -DHALF=0 -DBLOCK=128 -DITEMS=1
//        matvec.cu

#include <cuda_fp16.h>

#if !defined(NAME) || !defined(KIND) || !defined(HALF) || !defined(BLOCK) || !defined(ITEMS)
#error "define NAME, KIND, HALF, BLOCK and ITEMS"
#endif

#if HALF
typedef __half T;
__device__ __forceinline__ float f(T v) { return __half2float(v); }
#else
typedef float T;
__device__ __forceinline__ float f(T v) { return v; }
#endif

#if KIND == 0
extern "C" __global__ void NAME(const T* A, const T* x, float* y, int M, int N)
{
#pragma unroll
    for (int k = 0; k < ITEMS; ++k) {
        const int row = blockIdx.x * (BLOCK * ITEMS) + k * BLOCK + threadIdx.x;
        if (row < M) {
            float acc = 0.0f;
            for (int j = 0; j < N; ++j) {
                acc += f(A[(size_t)row * N + j]) * f(x[j]);
            }
            y[row] = acc;
        }
    }
}
#elif KIND == 1
extern "C" __global__ void NAME(const T* At, const T* x, float* y, int M, int N)
{
#pragma unroll
    for (int k = 0; k < ITEMS; ++k) {
        const int row = blockIdx.x * (BLOCK * ITEMS) + k * BLOCK + threadIdx.x;
        if (row < M) {
            float acc = 0.0f;
            for (int j = 0; j < N; ++j) {
                acc += f(At[(size_t)j * M + row]) * f(x[j]);
            }
            y[row] = acc;
        }
    }
}
#elif KIND == 2
extern "C" __global__ void NAME(const T* At, const T* x, float* y, int M, int N)
{
    __shared__ float xs[BLOCK];
    float acc[ITEMS];
#pragma unroll
    for (int k = 0; k < ITEMS; ++k) {
        acc[k] = 0.0f;
    }
    const int row0 = blockIdx.x * (BLOCK * ITEMS) + threadIdx.x;
    for (int j0 = 0; j0 < N; j0 += BLOCK) {
        const int j = j0 + threadIdx.x;
        xs[threadIdx.x] = j < N ? f(x[j]) : 0.0f;
        __syncthreads();
        const int width = min(BLOCK, N - j0);
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int row = row0 + k * BLOCK;
            if (row < M) {
                for (int jj = 0; jj < width; ++jj) {
                    acc[k] += f(At[(size_t)(j0 + jj) * M + row]) * xs[jj];
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int k = 0; k < ITEMS; ++k) {
        const int row = row0 + k * BLOCK;
        if (row < M) {
            y[row] = acc[k];
        }
    }
}
#elif KIND == 5
extern "C" __global__ void NAME(const T* At, const T* x, float* y, int M, int N)
{
    const int row0 = (blockIdx.x * BLOCK + threadIdx.x) * ITEMS;
    if (row0 + ITEMS <= M) {
        float acc[ITEMS];
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            acc[k] = 0.0f;
        }
        for (int j = 0; j < N; ++j) {
            const float xj = f(x[j]);
#pragma unroll
            for (int k = 0; k < ITEMS; ++k) {
                acc[k] += f(At[(size_t)j * M + row0 + k]) * xj;
            }
        }
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            y[row0 + k] = acc[k];
        }
    } else {
        for (int row = row0; row < M; ++row) {
            float acc = 0.0f;
            for (int j = 0; j < N; ++j) {
                acc += f(At[(size_t)j * M + row]) * f(x[j]);
            }
            y[row] = acc;
        }
    }
}
#elif KIND == 3 || KIND == 4
#if KIND == 4
#if HALF
#define VEC 2
#else
#define VEC 4
#endif
#else
#define VEC 1
#endif
extern "C" __global__ void NAME(const T* A, const T* x, float* y, int M, int N)
{
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * (BLOCK / 32) + (threadIdx.x >> 5);
    if (row >= M) {
        return;  // the whole warp: row is uniform across it
    }
    const T* a = A + (size_t)row * N;
    float acc = 0.0f;
#if KIND == 3
    for (int j0 = 0; j0 < N; j0 += 32 * ITEMS) {
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int j = j0 + k * 32 + lane;
            if (j < N) {
                acc += f(a[j]) * f(x[j]);
            }
        }
    }
#elif HALF
    const __half2* a2 = reinterpret_cast<const __half2*>(a);
    const __half2* x2 = reinterpret_cast<const __half2*>(x);
    for (int j = lane; j < N / VEC; j += 32) {
        const float2 av = __half22float2(a2[j]);
        const float2 xv = __half22float2(x2[j]);
        acc += av.x * xv.x + av.y * xv.y;
    }
#else
    const float4* a4 = reinterpret_cast<const float4*>(a);
    const float4* x4 = reinterpret_cast<const float4*>(x);
    for (int j = lane; j < N / VEC; j += 32) {
        const float4 av = a4[j];
        const float4 xv = x4[j];
        acc += av.x * xv.x + av.y * xv.y + av.z * xv.z + av.w * xv.w;
    }
#endif
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        acc += __shfl_down_sync(0xffffffffu, acc, offset);
    }
    if (lane == 0) {
        y[row] = acc;
    }
}
#else
#error "unknown KIND"
#endif
