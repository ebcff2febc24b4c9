// Microbenchmark kernels for the cost model's physics checks (benchmarks/physics.py,
// tests/test_physics.py), written the way the public gpu-benches suite and everyday CUDA
// write them; not part of the corpus, no transform was written against them.
//   nvcc -ptx -arch=sm_80 -O3 physics.cu -o physics.ptx

// gpu-stream's four kernels: one double per thread, guarded.
extern "C" __global__ void stream_init(double *a, double c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    a[i] = c;
}

extern "C" __global__ void stream_read(double *a, const double *b, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double t = b[i];
    if (t == 123.456) a[i] = t;  // never true for the inputs: keeps the load alive
}

extern "C" __global__ void stream_scale(double *a, const double *b, double c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    a[i] = b[i] * c;
}

extern "C" __global__ void stream_triad(double *a, const double *b, const double *d, double c,
                                        int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    a[i] = b[i] * c + d[i];
}

// A grid-stride saxpy: the Little's-law sweep launches one block per SM of 32 .. 2048 threads.
extern "C" __global__ void saxpy_gridstride(float *y, const float *x, float a, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        y[i] = a * x[i] + y[i];
}

// gpu-benches' L1 kernel: one block of 256 threads per SM sums the same N floats again and
// again, both loops unrolled so that 32 independent loads are in flight per thread; N is a
// template argument, as there, one entry per data-set size.
template <int N>
__device__ void l1_sum(const float *__restrict__ b, float *__restrict__ out, int zero,
                       int iters) {
    float acc = 0.0f;
    b += threadIdx.x;
#pragma unroll(N / 256 > 32 ? 1 : 32 / (N / 256))
    for (int it = 0; it < iters; ++it) {
        b += zero;
#pragma unroll(N / 256 >= 64 ? 32 : N / 256)
        for (int i = 0; i < N; i += 256) acc += b[i];
        acc *= 1.3f;
    }
    if (acc == 1233.0f) out[threadIdx.x] += acc;  // never true: keeps the loads alive
}

#define L1_SUM(KB)                                                                       \
    extern "C" __global__ void l1_sum_##KB##kb(const float *__restrict__ b,              \
                                              float *__restrict__ out, int zero, int iters) { \
        l1_sum<KB * 256>(b, out, zero, iters);                                           \
    }
L1_SUM(4)
L1_SUM(16)
L1_SUM(32)
L1_SUM(64)

// gpu-benches' L2 kernel: many blocks each read one chunk (products of doubles), block b
// chunk b % chunks; the set of chunks decides whether the reads hit L2.
extern "C" __global__ void l2_sum(const double *a, double *out, int chunk, int chunks,
                                  int iters) {
    double acc = 0.0;
    int base = (blockIdx.x % chunks) * chunk;
    for (int it = 0; it < iters; ++it)
        for (int i = threadIdx.x; i < chunk; i += blockDim.x)
            acc += a[base + i] * a[base + i];
    if (acc == -1.0) out[blockIdx.x] = acc;  // never true: keeps the loads alive
}

// gpu-benches' latency kernel: the buffer holds the addresses themselves, so each load's
// address is the previous load's value (no arithmetic on the dependent path).
extern "C" __global__ void pointer_chase(void *const *start, void **out, int steps) {
    void *const *p = start;
    for (int s = 0; s < steps; ++s)
        p = reinterpret_cast<void *const *>(*p);
    out[threadIdx.x] = const_cast<void *>(reinterpret_cast<const void *>(p));
}
