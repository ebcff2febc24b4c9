// Exact reductions for split_acc at tolerance 0 (tests/test_transforms_reduction.py): per-thread
// grid-stride integer sum, max and unsigned min of one loop, and a 64-bit sum with a float min.
//   nvcc -ptx -arch=sm_80 -O3 -lineinfo reduction.cu -o reduction.ptx
#include <climits>

extern "C" __global__ void int_stats(const int* __restrict__ in, int* __restrict__ out, int n)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    int s = 0, m = INT_MIN;
    unsigned int mn = 0xffffffffu;
    for (int i = t; i < n; i += blockDim.x * gridDim.x) {
        int v = in[i];
        s += v;
        m = max(m, v);
        mn = min(mn, (unsigned int)v);
    }
    out[3 * t] = s;
    out[3 * t + 1] = m;
    out[3 * t + 2] = (int)mn;
}

extern "C" __global__ void wide_min(const int* __restrict__ in, const float* __restrict__ x,
                                    long long* __restrict__ total, float* __restrict__ least, int n)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    long long s = 0;
    float f = INFINITY;
    for (int i = t; i < n; i += blockDim.x * gridDim.x) {
        s += in[i];
        f = fminf(f, x[i]);
    }
    total[t] = s;
    least[t] = f;
}
