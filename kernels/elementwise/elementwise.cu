// elementwise(KIND, BLOCK, ITEMS): grid-stride elementwise kernels, the way they are usually
// written: a compile-time block size (launched with exactly BLOCK threads), ITEMS elements per
// thread per grid step, a bounds check on every element, and a grid sized independently of n.
//
//   KIND 0  saxpy          y = a*x + y                 fp32, scalar loads
//   KIND 1  saxpy_vec4     y = a*x + y                 fp32, float4 loads/stores + scalar tail
//   KIND 2  haxpy          y = a*x + y                 fp16 (scalar __half)
//   KIND 3  haxpy_h2       y = a*x + y                 fp16, __half2 pairs + scalar tail
//   KIND 4  fused          out = relu(a*x + b*z)       fp32, scalar loads
//   KIND 5  saxpy_contig   y = a*x + y                 fp32, ITEMS contiguous elements per
//                          thread (thread coarsening, Kirk & Hwu, "Programming Massively
//                          Parallel Processors", 4th ed., sec. 6.3), scalar loads: a full run
//                          unguarded, the ragged last run element by element
//
// Build one variant:
//   nvcc -ptx -arch=sm_80 -O3 -DNAME=elementwise_saxpy_256_1 -DKIND=0 -DBLOCK=256 -DITEMS=1
//        elementwise.cu

#include <cuda_fp16.h>

#ifndef NAME
#error "define NAME"
#endif
#ifndef KIND
#error "define KIND"
#endif
#ifndef BLOCK
#error "define BLOCK"
#endif
#ifndef ITEMS
#error "define ITEMS"
#endif

#define CHUNK (BLOCK * ITEMS)

#if KIND == 0
extern "C" __global__ void NAME(const float* x, float* y, float a, int n)
{
    for (int base = blockIdx.x * CHUNK; base < n; base += gridDim.x * CHUNK) {
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            int i = base + k * BLOCK + threadIdx.x;
            if (i < n) {
                y[i] = a * x[i] + y[i];
            }
        }
    }
}
#elif KIND == 1
extern "C" __global__ void NAME(const float* x, float* y, float a, int n)
{
    const int n4 = n / 4;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (int base = blockIdx.x * CHUNK; base < n4; base += gridDim.x * CHUNK) {
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            int i = base + k * BLOCK + threadIdx.x;
            if (i < n4) {
                float4 xv = x4[i];
                float4 yv = y4[i];
                yv.x = a * xv.x + yv.x;
                yv.y = a * xv.y + yv.y;
                yv.z = a * xv.z + yv.z;
                yv.w = a * xv.w + yv.w;
                y4[i] = yv;
            }
        }
    }
    // The last n % 4 elements, one per thread of the first block.
    int t = n4 * 4 + blockIdx.x * BLOCK + threadIdx.x;
    if (blockIdx.x == 0 && t < n) {
        y[t] = a * x[t] + y[t];
    }
}
#elif KIND == 2
extern "C" __global__ void NAME(const __half* x, __half* y, float a, int n)
{
    const __half ah = __float2half(a);
    for (int base = blockIdx.x * CHUNK; base < n; base += gridDim.x * CHUNK) {
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            int i = base + k * BLOCK + threadIdx.x;
            if (i < n) {
                y[i] = __hfma(ah, x[i], y[i]);
            }
        }
    }
}
#elif KIND == 3
extern "C" __global__ void NAME(const __half* x, __half* y, float a, int n)
{
    const __half2 a2 = __float2half2_rn(a);
    const int n2 = n / 2;
    const __half2* x2 = reinterpret_cast<const __half2*>(x);
    __half2* y2 = reinterpret_cast<__half2*>(y);
    for (int base = blockIdx.x * CHUNK; base < n2; base += gridDim.x * CHUNK) {
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            int i = base + k * BLOCK + threadIdx.x;
            if (i < n2) {
                y2[i] = __hfma2(a2, x2[i], y2[i]);
            }
        }
    }
    if (blockIdx.x == 0 && threadIdx.x == 0 && (n & 1)) {
        y[n - 1] = __hfma(__low2half(a2), x[n - 1], y[n - 1]);
    }
}
#elif KIND == 4
extern "C" __global__ void NAME(const float* x, const float* z, float* out, float a, float b,
                                int n)
{
    for (int base = blockIdx.x * CHUNK; base < n; base += gridDim.x * CHUNK) {
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            int i = base + k * BLOCK + threadIdx.x;
            if (i < n) {
                out[i] = fmaxf(a * x[i] + b * z[i], 0.0f);
            }
        }
    }
}
#elif KIND == 5
extern "C" __global__ void NAME(const float* x, float* y, float a, int n)
{
    for (int base = (blockIdx.x * BLOCK + threadIdx.x) * ITEMS; base < n;
         base += gridDim.x * CHUNK) {
        if (base + ITEMS <= n) {
#pragma unroll
            for (int k = 0; k < ITEMS; ++k) {
                y[base + k] = a * x[base + k] + y[base + k];
            }
        } else {
            for (int i = base; i < n; ++i) {
                y[i] = a * x[i] + y[i];
            }
        }
    }
}
#else
#error "unknown KIND"
#endif
