// Kernels whose outputs depend on how the GPU approximates (tests/test_emulate_approx.py).
// Regenerate: nvcc -arch=sm_80 -ptx approx.cu -o approx.ptx
// `quot` divides with IEEE rounding (div.rn.f32): fast_math turns it into div.approx.ftz.f32.
// `tanh_ex2` and `sine` use the approximate instructions themselves.

extern "C" __global__ void quot(const float* __restrict__ x, const float* __restrict__ d,
                                float* __restrict__ y, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] / d[i];
}

extern "C" __global__ void tanh_ex2(const float* __restrict__ x, float* __restrict__ t,
                                    float* __restrict__ e, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float v = x[i], th, ex;
        asm("tanh.approx.f32 %0, %1;" : "=f"(th) : "f"(v));
        asm("ex2.approx.f32 %0, %1;" : "=f"(ex) : "f"(v));
        t[i] = th;
        e[i] = ex;
    }
}

extern "C" __global__ void sine(const float* __restrict__ x, float* __restrict__ y, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __sinf(x[i]);
}
