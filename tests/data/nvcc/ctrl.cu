extern "C" __global__ void ctrl(const int* in, int* out, int* per_thread, int* red)
{
    __shared__ int s[128];
    int t = threadIdx.x;
    int i = blockIdx.x * blockDim.x + t;
    int v = in[i];
    int acc = 0;
    for (int k = 0; k < (v & 15); ++k) {
        if (k & 1) acc += k * v; else acc ^= k;
    }
    while (acc > 1000) acc -= 777;
    s[t] = acc;
    __syncthreads();
    for (int st = blockDim.x / 2; st >= 32; st >>= 1) {
        if (t < st) s[t] += s[t + st];
        __syncthreads();
    }
    int x = (t < 32) ? s[t] : 0;
    for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffff, x, o);
    if (t == 0) out[blockIdx.x] = x;
    per_thread[i] = acc;
    if (v > 90) return;
    atomicAdd(red, 1);
    atomicMax(red + 1, v);
    unsigned ballot = __ballot_sync(__activemask(), v & 1);
    if ((t & 31) == 0) atomicAdd(red + 2, __popc(ballot));
}
