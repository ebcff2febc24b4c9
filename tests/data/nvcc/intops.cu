extern "C" __global__ void intops(const int* A, const int* B, int* out,
                                  long long* out64)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int a = A[i], b = B[i];
    unsigned ua = a, ub = b;
    int* o = out + i * 16;
    o[0] = __umulhi(ua, ub);
    o[1] = __mulhi(a, b);
    o[2] = b != 0 ? a / b : 7;
    o[3] = b != 0 ? a % b : 7;
    o[4] = ua >> (ub & 31);
    o[5] = a >> (ub & 31);
    o[6] = __popc(a) + 100 * __clz(a);
    o[7] = __brev(a);
    o[8] = __byte_perm(a, b, ub & 0x7777);
    o[9] = __funnelshift_l(a, b, ub);
    o[10] = __funnelshift_rc(a, b, ub);
    o[11] = min(a, b) ^ max(ua, ub);
    o[12] = abs(a) + (ub / 3u) + (ub % 5u);
    o[13] = __ffs(a) + 64 * __sad(a, b, 3);
    o[14] = (short)a * (short)b + (signed char)b;
    o[15] = (a > b) ? __float_as_int((float)a) : (int)((unsigned char)a);
    long long wa = a, wb = b;
    out64[i * 4 + 0] = wa * wb * 3 + (wa << 20);
    out64[i * 4 + 1] = wb != 0 ? (wa * 1000003LL) / wb : 5;
    out64[i * 4 + 2] = __umul64hi((unsigned long long)wa * 77777777ULL, (unsigned long long)wb);
    out64[i * 4 + 3] = __mul64hi(wa * 99999989LL, wb * -31LL) + __popcll(wa * wb) + __clzll(wa);
}
