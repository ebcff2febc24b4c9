#include <cuda_fp16.h>
extern "C" __global__ void h2bcast(const float* a, const __half2* x, __half2* y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    __half2 a2 = __float2half2_rn(a[i]);
    y[i] = __hmul2(a2, x[i]);
}
