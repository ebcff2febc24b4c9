#include <cuda_fp16.h>
extern "C" __global__ void fltops(const float* A, const float* B, const float* C,
                                  float* out, int* iout)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float a = A[i], b = B[i], c = C[i];
    float* o = out + i * 16;
    o[0] = __fmaf_rn(a, b, c);
    o[1] = __fmaf_rz(a, b, c);
    o[2] = __fmaf_rd(a, b, c);
    o[3] = __fmaf_ru(a, b, c);
    o[4] = __fadd_rz(a, b);
    o[5] = __fmul_ru(a, b);
    o[6] = __fdiv_rn(a, b);
    o[7] = __fdiv_rz(a, b);
    o[8] = __fsqrt_rd(fabsf(a));
    o[9] = __frcp_ru(b);
    o[10] = fminf(a, b);
    o[11] = fmaxf(a, c);
    o[12] = __int2float_rz(__float_as_int(a));
    o[13] = __double2float_ru((double)a * (double)b + (double)c);
    o[14] = __half2float(__float2half_rn(a));
    o[15] = __fsub_rd(a, c) + 0.0f;
    int* io = iout + i * 4;
    io[0] = __float2int_rd(a * 1000.0f);
    io[1] = (int)__float2uint_ru(b);
    io[2] = __float2int_rn(c);
    io[3] = (int)__float2ll_rz(a * 1e12f);
}
