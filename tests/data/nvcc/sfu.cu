#include <cuda_fp16.h>
extern "C" __global__ void sfu(const float* a, const float* b, float* out, float* acc)
{
    __shared__ float s;
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (threadIdx.x == 0) s = 0.0f;
    __syncthreads();
    float x = a[i];
    out[i * 4 + 0] = __expf(x);
    out[i * 4 + 1] = rsqrtf(fabsf(x) + 1.0f);
    out[i * 4 + 2] = __fdividef(x, b[i]);
    out[i * 4 + 3] = __half2float(__float2half_rn(x * 1000.0f));
    atomicAdd(&s, b[i]);
    __syncthreads();
    if (threadIdx.x == 0) atomicAdd(acc, s);
}
