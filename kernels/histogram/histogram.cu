// histogram(KIND, DATA, BINS, BLOCK, ITEMS): count n values into BINS unsigned bins.
//
//   KIND 0  global  every element does atomicAdd on the global histogram
//   KIND 1  shared  a privatised per-block histogram in shared memory (zeroed, barrier,
//                   shared atomics, barrier), then one global atomicAdd per non-empty bin
//   KIND 2  vec     as shared, reading four bytes at a time as uchar4 (DATA 8 only), with a
//                   scalar tail for n % 4
//   KIND 3  partial the CUDA samples' histogram256 form (samples/2_Concepts_and_Techniques/
//                   histogram/histogram256.cu): one sub-histogram per warp in shared memory,
//                   summed per bin after the barrier and written with plain stores as this
//                   block's row of `hist` (gridDim.x rows of BINS partial counts), no atomics
//                   on global memory (the sample's merge kernel then sums the rows)
//
// DATA 8: unsigned char samples, bin = v * BINS / 256 (BINS a power of two <= 256).
// DATA 32: int samples, bin = v; values outside [0, BINS) are dropped.
// The grid strides over the input in chunks of BLOCK*ITEMS (launched with BLOCK threads), so
// any n and any grid size work. KIND 0-2: `hist` must be zeroed before the launch (they add).
//
// Build one variant:
//   nvcc -ptx -arch=sm_80 -O3 -DNAME=histogram_shared_u8_256_256_1 -DKIND=1 -DDATA=8 -DBINS=256
//        -DBLOCK=256 -DITEMS=1 histogram.cu

#if !defined(NAME) || !defined(KIND) || !defined(DATA) || !defined(BINS)
#error "define NAME, KIND, DATA and BINS"
#endif
#if !defined(BLOCK) || !defined(ITEMS)
#error "define BLOCK and ITEMS"
#endif

#define CHUNK (BLOCK * ITEMS)

#if DATA == 8
typedef unsigned char T;
#define ADD(h, v) atomicAdd(&(h)[((unsigned)(v) * BINS) >> 8], 1u)
#elif DATA == 32
typedef int T;
#define ADD(h, v)                                                                              \
    do {                                                                                       \
        const unsigned b_ = (unsigned)(v);                                                     \
        if (b_ < BINS) atomicAdd(&(h)[b_], 1u);                                                \
    } while (0)
#else
#error "DATA must be 8 or 32"
#endif

#if KIND == 2 && DATA != 8
#error "KIND 2 reads uchar4: DATA must be 8"
#endif

#if KIND == 3
#define WARPS (BLOCK / 32)
extern "C" __global__ void NAME(const T* data, unsigned int* hist, int n)
{
    __shared__ unsigned int sub[WARPS * BINS];
    for (int b = threadIdx.x; b < WARPS * BINS; b += BLOCK) {
        sub[b] = 0;
    }
    __syncthreads();
    unsigned int* const warp_hist = sub + (threadIdx.x >> 5) * BINS;
    for (int base = blockIdx.x * CHUNK; base < n; base += gridDim.x * CHUNK) {
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int i = base + k * BLOCK + threadIdx.x;
            if (i < n) {
                ADD(warp_hist, data[i]);
            }
        }
    }
    __syncthreads();
    for (int b = threadIdx.x; b < BINS; b += BLOCK) {
        unsigned int sum = 0;
#pragma unroll
        for (int w = 0; w < WARPS; ++w) {
            sum += sub[w * BINS + b];
        }
        hist[blockIdx.x * BINS + b] = sum;
    }
}
#else
extern "C" __global__ void NAME(const T* data, unsigned int* hist, int n)
{
#if KIND == 0
    for (int base = blockIdx.x * CHUNK; base < n; base += gridDim.x * CHUNK) {
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int i = base + k * BLOCK + threadIdx.x;
            if (i < n) {
                ADD(hist, data[i]);
            }
        }
    }
#else
    __shared__ unsigned int local[BINS];
    for (int b = threadIdx.x; b < BINS; b += BLOCK) {
        local[b] = 0;
    }
    __syncthreads();
#if KIND == 1
    for (int base = blockIdx.x * CHUNK; base < n; base += gridDim.x * CHUNK) {
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int i = base + k * BLOCK + threadIdx.x;
            if (i < n) {
                ADD(local, data[i]);
            }
        }
    }
#else
    const int n4 = n / 4;
    const uchar4* data4 = reinterpret_cast<const uchar4*>(data);
    for (int base = blockIdx.x * CHUNK; base < n4; base += gridDim.x * CHUNK) {
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            const int i = base + k * BLOCK + threadIdx.x;
            if (i < n4) {
                const uchar4 v = data4[i];
                ADD(local, v.x);
                ADD(local, v.y);
                ADD(local, v.z);
                ADD(local, v.w);
            }
        }
    }
    const int t = n4 * 4 + threadIdx.x;
    if (blockIdx.x == 0 && t < n) {
        ADD(local, data[t]);
    }
#endif
    __syncthreads();
    for (int b = threadIdx.x; b < BINS; b += BLOCK) {
        const unsigned int c = local[b];
        if (c != 0) {
            atomicAdd(&hist[b], c);
        }
    }
#endif
}
#endif
