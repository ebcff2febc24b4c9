#include <cstdio>
extern "C" __global__ void vadd(const float* a, const float* b, float* c, int n) {
  int i = blockIdx.x*blockDim.x+threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
  else return;
  for (int k=0;k<n;k+=7) if (a[k] > 2.f) printf("%d\n", k);
}
__device__ __noinline__ float sq(float x){return x*x;}
__global__ void __launch_bounds__(128, 2) f2(float* x) { x[threadIdx.x] = sq(x[threadIdx.x]); }
__device__ float gvar[4];
__constant__ int cvar = 3;
