/* AdvSIMD lane operations through arm_neon.h intrinsics over a few input vectors;
   every result is printed as two 64-bit halves and compared with qemu-aarch64. */
#include <arm_neon.h>
#include <stdint.h>
#include <stdio.h>

static uint8_t in[4][16] = {
    {0, 1, 2, 3, 0x7f, 0x80, 0xff, 0xfe, 9, 10, 11, 12, 13, 14, 15, 16},
    {0xff, 1, 0x80, 3, 0x7f, 0x7f, 0, 0xfe, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x81},
    {0x55, 0xaa, 0, 0xff, 1, 2, 3, 4, 0x80, 0, 0, 0x80, 0xff, 0xff, 0x7f, 0x7f},
    {5, 4, 3, 2, 1, 0, 0xf0, 0x0f, 17, 255, 31, 0, 7, 8, 200, 100},
};

static void show(const char *name, uint8x16_t v) {
    uint64x2_t q = vreinterpretq_u64_u8(v);
    printf("%-10s %016llx %016llx\n", name, (unsigned long long)vgetq_lane_u64(q, 1),
           (unsigned long long)vgetq_lane_u64(q, 0));
}
#define SHOW(expr) show(#expr, vreinterpretq_##expr)
#define SHOW8(expr) show(#expr, expr)
#define SHOWD(type, expr) show(#expr, vcombine_u8(vreinterpret_u8_##type(expr), vdup_n_u8(0)))

int main(void) {
    for (int i = 0; i < 4; i++) {
        uint8x16_t a = vld1q_u8(in[i]), b = vld1q_u8(in[(i + 1) % 4]);
        uint16x8_t a16 = vreinterpretq_u16_u8(a), b16 = vreinterpretq_u16_u8(b);
        uint32x4_t a32 = vreinterpretq_u32_u8(a), b32 = vreinterpretq_u32_u8(b);
        int8x16_t s = vreinterpretq_s8_u8(a), t = vreinterpretq_s8_u8(b);
        int16x8_t s16 = vreinterpretq_s16_u8(a), t16 = vreinterpretq_s16_u8(b);
        uint64x2_t a64 = vreinterpretq_u64_u8(a), b64 = vreinterpretq_u64_u8(b);
        show("a", a);
        SHOW(u8_u16(vaddq_u16(a16, b16)));
        SHOW(u8_u32(vsubq_u32(a32, b32)));
        SHOW(u8_u64(vaddq_u64(a64, b64)));
        SHOW(u8_u16(vmulq_u16(a16, b16)));
        SHOW8(vceqq_u8(a, b));
        SHOW8(vtstq_u8(a, b));
        SHOW8(vcgtq_s8(s, t));
        SHOW(u8_u16(vcgeq_s16(s16, t16)));
        SHOW8(vcgtq_u8(a, b));
        SHOW(u8_u32(vcgeq_u32(a32, b32)));
        SHOW(u8_u64(vceqq_u64(a64, b64)));
        SHOW(u8_s8(vmaxq_s8(s, t)));
        SHOW(u8_u16(vminq_u16(a16, b16)));
        SHOW8(vpaddq_u8(a, b));
        SHOW8(vpmaxq_u8(a, b));
        SHOW(u8_s16(vpminq_s16(s16, t16)));
        SHOW8(vandq_u8(a, b));
        SHOW8(vbicq_u8(a, b));
        SHOW8(vorrq_u8(a, b));
        SHOW8(vornq_u8(a, b));
        SHOW8(veorq_u8(a, b));
        SHOW8(vbslq_u8(vld1q_u8(in[(i + 2) % 4]), a, b));
        SHOW(u8_u16(vaddl_u8(vget_low_u8(a), vget_low_u8(b))));
        SHOW(u8_s16(vaddl_high_s8(s, t)));
        SHOW(u8_u32(vaddw_u16(a32, vget_low_u16(b16))));
        SHOW(u8_s32(vsubl_s16(vget_low_s16(s16), vget_low_s16(t16))));
        SHOW(u8_u16(vmull_u8(vget_low_u8(a), vget_low_u8(b))));
        SHOW(u8_s32(vmull_high_s16(s16, t16)));
        SHOW8(vrev64q_u8(a));
        SHOW(u8_u16(vrev32q_u16(a16)));
        SHOW8(vrev16q_u8(a));
        SHOW8(vcntq_u8(a));
        SHOW8(vmvnq_u8(a));
        SHOW8(vrbitq_u8(a));
        SHOW8(vceqzq_u8(a));
        SHOW8(vcltzq_s8(s));
        SHOW(u8_u16(vcgezq_s16(s16)));
        SHOW(u8_s8(vabsq_s8(s)));
        SHOW(u8_s16(vnegq_s16(s16)));
        SHOWD(u16, vmovn_u32(a32));
        SHOW8(vmovn_high_u16(vget_low_u8(b), a16));
        printf("across %u %u %u %d %u %d %u\n", vaddvq_u8(a), vmaxvq_u8(a), vminvq_u16(a16),
               vmaxvq_s8(s), vaddlvq_u8(a), vaddlvq_s16(s16), vminvq_u32(a32));
        printf("addp %llu\n", (unsigned long long)vpaddd_u64(a64));
        SHOW8(vdupq_laneq_u8(a, 5));
        SHOW(u8_u16(vdupq_n_u16((uint16_t)i * 0x1234)));
        printf("umov %u %d %llu\n", vgetq_lane_u16(a16, 3), vgetq_lane_s8(s, 6),
               (unsigned long long)vgetq_lane_u64(b64, 1));
        SHOW(u8_u32(vsetq_lane_u32(0xdeadbeef, a32, 2)));
        SHOW(u8_u16(vcopyq_laneq_u16(a16, 1, b16, 7)));
        SHOW(u8_u32(vmovq_n_u32(0x00ab0000)));
        SHOW(u8_u16(vbicq_u16(a16, vdupq_n_u16(0xff00))));
        SHOW8(vshrq_n_u8(a, 3));
        SHOW(u8_s16(vshrq_n_s16(s16, 15)));
        SHOW(u8_u32(vsraq_n_u32(a32, b32, 7)));
        SHOW(u8_u64(vsriq_n_u64(a64, b64, 9)));
        SHOW(u8_u16(vshlq_n_u16(a16, 4)));
        SHOW8(vsliq_n_u8(a, b, 2));
        show("vshrn_n_u16", vcombine_u8(vshrn_n_u16(a16, 4), vdup_n_u8(0)));
        SHOW(u8_s16(vmovl_s8(vget_low_s8(s))));
        SHOW(u8_u32(vshll_n_u16(vget_low_u16(a16), 3)));
        SHOW8(vuzp1q_u8(a, b));
        SHOW(u8_u16(vuzp2q_u16(a16, b16)));
        SHOW8(vtrn1q_u8(a, b));
        SHOW(u8_u32(vtrn2q_u32(a32, b32)));
        SHOW8(vzip1q_u8(a, b));
        SHOW(u8_u16(vzip2q_u16(a16, b16)));
        SHOW8(vextq_u8(a, b, 5));
        SHOW8(vqtbl1q_u8(a, vandq_u8(b, vdupq_n_u8(0x1f))));
        SHOW8(vqtbx1q_u8(b, a, vandq_u8(b, vdupq_n_u8(0x1f))));
        uint8x16x2_t pair = {{a, b}};
        SHOW8(vqtbl2q_u8(pair, vandq_u8(vld1q_u8(in[(i + 3) % 4]), vdupq_n_u8(0x3f))));
        uint8_t out[16];
        vst1q_lane_u16((uint16_t *)out, a16, 5);
        SHOW8(vld1q_dup_u8(out + 1));
        SHOW(u8_u32(vld1q_lane_u32((uint32_t *)in[3], a32, 3)));
    }
    return 0;
}
