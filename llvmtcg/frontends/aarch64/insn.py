"""A64 instruction patterns (Arm ARM DDI 0487, "A64 Instruction Set Encoding").

One line per encoding, grouped by the manual's encoding classes; every ``foo`` is
translated by ``trans_foo(ctx, args)``. Conventions the translators rely on:

* branch offsets arrive sign-extended and scaled to bytes; ``adrp``'s is shifted by 12;
* register fields are raw numbers: whether 31 is SP or the zero register is the
  translator's business (``DisasContext.get_x`` / ``get_x_sp``);
* fields the manual marks "should be" (SBO/SBZ) are ignored (``-``), as hardware does;
* an encoding class whose members differ only in size or option bits has one pattern,
  and its translator returns False for the unallocated combinations.
"""

from __future__ import annotations

from ..decodetree import DecodeTable, build_table

PATTERNS = r"""
# ---- fields ---------------------------------------------------------------------
%rd        0:5
%rt        0:5
%rn        5:5
%rm        16:5
%rs        16:5
%ra        10:5
%rt2       10:5
%sf        31:1
%imm12     10:12
%imm16     5:16
%imm6      10:6
%imm3      10:3
%imm5      16:5
%sh22      22:1
%shift     22:2
%hw        21:2
%n         22:1
%immr      16:6
%imms      10:6
%cond12    12:4
%cond0     0:4
%nzcv      0:4
%option    13:3
%s12       12:1
%size      30:2
%opc       22:2
%v         26:1
%idx       10:2
%idx23     23:2
%imm9      12:s9
%imm7      15:s7
%o0        15:1
%lacq      22:1
%a23       23:1
%r22       22:1
%q         30:1
%sz        22:1
%sizev     22:2
%size10    10:2
%opcode    12:4
%op13      13:3
%rtype     22:2

%adr_imm   5:s19 29:2
%adrp_imm  5:s19 29:2  <<12
%imm26     0:s26       <<2
%imm19     5:s19       <<2
%imm14     5:s14       <<2
%bitpos    31:1 19:5
%copy4     11:4 16:5
%modimm    29:1 16:3 12:4 5:5
%immhb     16:7
%imm4      11:4
%imm8      13:8
%len13     13:2
%sysreg    19:2 16:3 12:4 8:4 5:3
%hlm       11:1 21:1 20:1
%rm4       16:4

# ---- argument sets --------------------------------------------------------------
&ri        rd imm
&addsub_i  sf rd rn imm sh
&bitmask   sf rd rn n immr imms
&movw      sf rd imm hw
&extr      sf rd rn rm imms n
&rrr_sh    sf rd rn rm shift imm
&rrr_ext   sf rd rn rm option imm
&rrr       sf rd rn rm
&rrrr      sf rd rn rm ra
&rr        sf rd rn
&crc       sf sz rd rn rm
&ccmp      sf rn rm imm cond nzcv
&csel      sf rd rn rm cond
&branch    imm
&cbz       sf rt imm
&tbz       bitpos rt imm
&bcond     imm cond
&r         rn
&i         imm
&sys       rt sysreg
&empty
&excl      size rs rt rt2 rn o0
&cas       size rs rt rn lacq o0
&ldlit     rt imm opc
&ldlit_v   rt imm opc
&ldp       opc idx imm rt2 rn rt
&ldst_imm  size v opc imm idx rn rt
&ldst_roff size v opc rm option s rn rt
&ldst_u    size v opc imm rn rt
&atomic    size a r rs rn rt
&simd_ldst q l opcode sizev rm rn rt
&simd_ldst1 q l r s opcode sizev rm rn rt
%r21       21:1

&fp        sf ftype rn rd
&fpfix     sf ftype rn rd scale
&fp1       ftype rd rn
&fp2       ftype rd rn rm
&fp3       ftype rd rn rm ra
&fpcmp     ftype rn rm cond nzcv
&fpcsel    ftype rd rn rm cond
&fpimm     ftype rd imm
&simd      q size rm rn rd imm

# ---- formats --------------------------------------------------------------------
@adr       &ri       %rd imm=%adr_imm
@adrp      &ri       %rd imm=%adrp_imm
@addsub_i  &addsub_i %sf %rd %rn imm=%imm12 sh=%sh22
@bitmask   &bitmask  %sf %rd %rn %n %immr %imms
@movw      &movw     %sf %rd imm=%imm16 %hw
@extr      &extr     %sf %rd %rn %rm %imms
@rrr_sh    &rrr_sh   %sf %rd %rn %rm %shift imm=%imm6
@rrr_ext   &rrr_ext  %sf %rd %rn %rm %option imm=%imm3
@rrr       &rrr      %sf %rd %rn %rm
@rrrr      &rrrr     %sf %rd %rn %rm %ra
@rr        &rr       %sf %rd %rn
@crc       &crc      %sf sz=%size10 %rd %rn %rm
@ccmp_r    &ccmp     %sf %rn %rm imm=0 cond=%cond12 %nzcv
@ccmp_i    &ccmp     %sf %rn rm=0 imm=%imm5 cond=%cond12 %nzcv
@csel      &csel     %sf %rd %rn %rm cond=%cond12
@b         &branch   imm=%imm26
@cbz       &cbz      %sf %rt imm=%imm19
@tbz       &tbz      %bitpos %rt imm=%imm14
@bcond     &bcond    imm=%imm19 cond=%cond0
@r         &r        %rn
@i16       &i        imm=%imm16
@sys       &sys      %rt %sysreg
@excl      &excl     %size %rs %rt %rt2 %rn %o0
@cas       &cas      %size %rs %rt %rn %lacq %o0
@ldlit     &ldlit    %rt imm=%imm19 opc=%size
@ldlit_v   &ldlit_v  %rt imm=%imm19 opc=%size
@ldp       &ldp      opc=%size idx=%idx23 imm=%imm7 %rt2 %rn %rt
@ldst_imm  &ldst_imm %size %v %opc imm=%imm9 %idx %rn %rt
@ldst_roff &ldst_roff %size %v %opc %rm %option s=%s12 %rn %rt
@ldst_u    &ldst_u   %size %v %opc imm=%imm12 %rn %rt
@atomic    &atomic   %size a=%a23 r=%r22 %rs %rn %rt
@fmov_gp   &fp       %sf ftype=%sizev %rn %rd
@fp1       &fp1      ftype=%sizev %rd %rn
@fp2       &fp2      ftype=%sizev %rd %rn %rm
@fp3       &fp3      ftype=%sizev %rd %rn %rm %ra
@fpcmp     &fpcmp    ftype=%sizev %rn %rm cond=0 nzcv=0
@fpccmp    &fpcmp    ftype=%sizev %rn %rm cond=%cond12 %nzcv
@fpcsel    &fpcsel   ftype=%sizev %rd %rn %rm cond=%cond12
@fpimm     &fpimm    ftype=%sizev %rd imm=%imm8
@fpcvt     &fp       %sf ftype=%sizev %rd %rn
@fpfix     &fpfix    %sf ftype=%sizev %rd %rn scale=%imm6
@simd3     &simd     %q size=%sizev %rm %rn %rd imm=0
@simd2     &simd     %q size=%sizev rm=0 %rn %rd imm=0
@simd_copy &simd     %q size=0 rm=0 %rn %rd imm=%imm5
@simd_copy4 &simd    %q size=0 rm=0 %rn %rd imm=%copy4
@simd_modimm &simd   %q size=0 rm=0 rn=0 %rd imm=%modimm
@simd_shift &simd    %q size=0 rm=0 %rn %rd imm=%immhb
@simd_ext  &simd     %q size=0 %rm %rn %rd imm=%imm4
@simd_tbl  &simd     %q size=%len13 %rm %rn %rd imm=0
@simd_elem &simd     %q size=%sizev rm=%rm4 %rn %rd imm=%hlm
@simd3s    &simd     q=0 size=%sizev %rm %rn %rd imm=0
@simd2s    &simd     q=0 size=%sizev rm=0 %rn %rd imm=0
@simd_shifts &simd   q=0 size=0 rm=0 %rn %rd imm=%immhb
@simd_elems &simd    q=0 size=%sizev rm=%rm4 %rn %rd imm=%hlm
@simd_ldst &simd_ldst %q l=%lacq %opcode sizev=%size10 %rm %rn %rt
@simd_ldst1 &simd_ldst1 %q l=%lacq r=%r21 s=%s12 opcode=%op13 sizev=%size10 %rm %rn %rt

# ==== data processing: immediate ==================================================
adr        0 .. 10000 ................... .....          @adr
adrp       1 .. 10000 ................... .....          @adrp
add_imm    . 0 0 100010 . ............ ..... .....       @addsub_i
adds_imm   . 0 1 100010 . ............ ..... .....       @addsub_i
sub_imm    . 1 0 100010 . ............ ..... .....       @addsub_i
subs_imm   . 1 1 100010 . ............ ..... .....       @addsub_i
and_imm    . 00 100100 . ...... ...... ..... .....       @bitmask
orr_imm    . 01 100100 . ...... ...... ..... .....       @bitmask
eor_imm    . 10 100100 . ...... ...... ..... .....       @bitmask
ands_imm   . 11 100100 . ...... ...... ..... .....       @bitmask
movn       . 00 100101 .. ................ .....         @movw
movz       . 10 100101 .. ................ .....         @movw
movk       . 11 100101 .. ................ .....         @movw
sbfm       . 00 100110 . ...... ...... ..... .....       @bitmask
bfm        . 01 100110 . ...... ...... ..... .....       @bitmask
ubfm       . 10 100110 . ...... ...... ..... .....       @bitmask
extr       . 00 100111 . 0 ..... ...... ..... .....      @extr n=%n

# ==== branches, exception generation, system ======================================
b          0 00101 ..........................            @b
bl         1 00101 ..........................            @b
cbz        . 011010 0 ................... .....          @cbz
cbnz       . 011010 1 ................... .....          @cbz
tbz        . 011011 0 ..... .............. .....         @tbz
tbnz       . 011011 1 ..... .............. .....         @tbz
b_cond     0101010 0 ................... 0 ....          @bcond
br         1101011 0000 11111 000000 ..... 00000         @r
blr        1101011 0001 11111 000000 ..... 00000         @r
ret        1101011 0010 11111 000000 ..... 00000         @r
svc        11010100 000 ................ 000 01          @i16
brk        11010100 001 ................ 000 00          @i16
hint       1101010100 0 00 011 0010 ---- --- 11111
clrex      1101010100 0 00 011 0011 ---- 010 11111
dsb        1101010100 0 00 011 0011 ---- 100 11111
dmb        1101010100 0 00 011 0011 ---- 101 11111
isb        1101010100 0 00 011 0011 ---- 110 11111
sys        1101010100 0 01 ... .... .... ... .....       @sys
msr        1101010100 0 1. ... .... .... ... .....       @sys
mrs        1101010100 1 1. ... .... .... ... .....       @sys

# ==== loads and stores ============================================================
# Exclusive, load-acquire/store-release, compare-and-swap (size 001000 o2 L o1 ...).
stxr       .. 001000 0 0 0 ..... . ----- ..... .....     @excl rt2=31
ldxr       .. 001000 0 1 0 ----- . ----- ..... .....     @excl rs=31 rt2=31
stxp       1. 001000 0 0 1 ..... . ..... ..... .....     @excl
ldxp       1. 001000 0 1 1 ----- . ..... ..... .....     @excl rs=31
casp       0. 001000 0 . 1 ..... . 11111 ..... .....     @cas
stlr       .. 001000 1 0 0 ----- . ----- ..... .....     @excl rs=31 rt2=31
ldar       .. 001000 1 1 0 ----- . ----- ..... .....     @excl rs=31 rt2=31
cas        .. 001000 1 . 1 ..... . 11111 ..... .....     @cas
ldr_lit    0. 011 0 00 ................... .....         @ldlit
ldrsw_lit  10 011 0 00 ................... .....         @ldlit
prfm_lit   11 011 0 00 ................... .....         @ldlit
ldr_lit_v  .. 011 1 00 ................... .....         @ldlit_v
stp        .. 101 0 0 .. 0 ....... ..... ..... .....     @ldp
ldp        .. 101 0 0 .. 1 ....... ..... ..... .....     @ldp
stp_v      .. 101 1 0 .. 0 ....... ..... ..... .....     @ldp
ldp_v      .. 101 1 0 .. 1 ....... ..... ..... .....     @ldp
ldst_imm   .. 111 . 00 .. 0 ......... .. ..... .....     @ldst_imm
ldst_roff  .. 111 . 00 .. 1 ..... ... . 10 ..... .....   @ldst_roff
ldst_uimm  .. 111 . 01 .. ............ ..... .....       @ldst_u
ldadd      .. 111 0 00 . . 1 ..... 0 000 00 ..... .....  @atomic
ldclr      .. 111 0 00 . . 1 ..... 0 001 00 ..... .....  @atomic
ldeor      .. 111 0 00 . . 1 ..... 0 010 00 ..... .....  @atomic
ldset      .. 111 0 00 . . 1 ..... 0 011 00 ..... .....  @atomic
ldsmax     .. 111 0 00 . . 1 ..... 0 100 00 ..... .....  @atomic
ldsmin     .. 111 0 00 . . 1 ..... 0 101 00 ..... .....  @atomic
ldumax     .. 111 0 00 . . 1 ..... 0 110 00 ..... .....  @atomic
ldumin     .. 111 0 00 . . 1 ..... 0 111 00 ..... .....  @atomic
swp        .. 111 0 00 . . 1 ..... 1 000 00 ..... .....  @atomic
# AdvSIMD structure loads/stores (multiple structures, single structure; post-index
# forms have rm, where rm=31 means "by the transfer size").
simd_ldst_multi   0 . 0011000 . 000000 .... .. ..... .....   @simd_ldst rm=0
simd_ldst_multi_p 0 . 0011001 . 0 ..... .... .. ..... .....  @simd_ldst -> simd_ldst_multi
simd_ldst_single   0 . 0011010 . . 00000 ... . .. ..... .....  @simd_ldst1 rm=0
simd_ldst_single_p 0 . 0011011 . . ..... ... . .. ..... .....  @simd_ldst1 -> simd_ldst_single

# ==== data processing: register ===================================================
and_r      . 00 01010 .. 0 ..... ...... ..... .....      @rrr_sh
bic_r      . 00 01010 .. 1 ..... ...... ..... .....      @rrr_sh
orr_r      . 01 01010 .. 0 ..... ...... ..... .....      @rrr_sh
orn_r      . 01 01010 .. 1 ..... ...... ..... .....      @rrr_sh
eor_r      . 10 01010 .. 0 ..... ...... ..... .....      @rrr_sh
eon_r      . 10 01010 .. 1 ..... ...... ..... .....      @rrr_sh
ands_r     . 11 01010 .. 0 ..... ...... ..... .....      @rrr_sh
bics_r     . 11 01010 .. 1 ..... ...... ..... .....      @rrr_sh
add_r      . 0 0 01011 .. 0 ..... ...... ..... .....     @rrr_sh
adds_r     . 0 1 01011 .. 0 ..... ...... ..... .....     @rrr_sh
sub_r      . 1 0 01011 .. 0 ..... ...... ..... .....     @rrr_sh
subs_r     . 1 1 01011 .. 0 ..... ...... ..... .....     @rrr_sh
add_ext    . 0 0 01011 00 1 ..... ... ... ..... .....    @rrr_ext
adds_ext   . 0 1 01011 00 1 ..... ... ... ..... .....    @rrr_ext
sub_ext    . 1 0 01011 00 1 ..... ... ... ..... .....    @rrr_ext
subs_ext   . 1 1 01011 00 1 ..... ... ... ..... .....    @rrr_ext
adc        . 0 0 11010000 ..... 000000 ..... .....       @rrr
adcs       . 0 1 11010000 ..... 000000 ..... .....       @rrr
sbc        . 1 0 11010000 ..... 000000 ..... .....       @rrr
sbcs       . 1 1 11010000 ..... 000000 ..... .....       @rrr
ccmn_r     . 0 1 11010010 ..... .... 0 0 ..... 0 ....    @ccmp_r -> ccmn
ccmp_r     . 1 1 11010010 ..... .... 0 0 ..... 0 ....    @ccmp_r -> ccmp
ccmn_i     . 0 1 11010010 ..... .... 1 0 ..... 0 ....    @ccmp_i -> ccmn
ccmp_i     . 1 1 11010010 ..... .... 1 0 ..... 0 ....    @ccmp_i -> ccmp
csel       . 0 0 11010100 ..... .... 00 ..... .....      @csel
csinc      . 0 0 11010100 ..... .... 01 ..... .....      @csel
csinv      . 1 0 11010100 ..... .... 00 ..... .....      @csel
csneg      . 1 0 11010100 ..... .... 01 ..... .....      @csel
madd       . 00 11011 000 ..... 0 ..... ..... .....      @rrrr
msub       . 00 11011 000 ..... 1 ..... ..... .....      @rrrr
smaddl     1 00 11011 001 ..... 0 ..... ..... .....      @rrrr
smsubl     1 00 11011 001 ..... 1 ..... ..... .....      @rrrr
smulh      1 00 11011 010 ..... 0 ----- ..... .....      @rrr
umaddl     1 00 11011 101 ..... 0 ..... ..... .....      @rrrr
umsubl     1 00 11011 101 ..... 1 ..... ..... .....      @rrrr
umulh      1 00 11011 110 ..... 0 ----- ..... .....      @rrr
udiv       . 0 0 11010110 ..... 000010 ..... .....       @rrr
sdiv       . 0 0 11010110 ..... 000011 ..... .....       @rrr
lslv       . 0 0 11010110 ..... 001000 ..... .....       @rrr
lsrv       . 0 0 11010110 ..... 001001 ..... .....       @rrr
asrv       . 0 0 11010110 ..... 001010 ..... .....       @rrr
rorv       . 0 0 11010110 ..... 001011 ..... .....       @rrr
crc32      . 0 0 11010110 ..... 010 0 .. ..... .....     @crc
crc32c     . 0 0 11010110 ..... 010 1 .. ..... .....     @crc
rbit       . 1 0 11010110 00000 000000 ..... .....       @rr
rev16      . 1 0 11010110 00000 000001 ..... .....       @rr
rev32      . 1 0 11010110 00000 000010 ..... .....       @rr
rev64      . 1 0 11010110 00000 000011 ..... .....       @rr
clz        . 1 0 11010110 00000 000100 ..... .....       @rr
cls        . 1 0 11010110 00000 000101 ..... .....       @rr


# ==== floating point and AdvSIMD ==================================================
# Register moves, translated inline.
fmov_to_gp   . 00 11110 .. 1 00 110 000000 ..... .....    @fmov_gp
fmov_from_gp . 00 11110 .. 1 00 111 000000 ..... .....    @fmov_gp
fmov_hi_to_gp   1 00 11110 10 1 01 110 000000 ..... .....  @fmov_gp
fmov_hi_from_gp 1 00 11110 10 1 01 111 000000 ..... .....  @fmov_gp
# Scalar FP data processing (type 00 single, 01 double; half precision is not done).
fmov_reg   000 11110 .. 1 000000 10000 ..... .....       @fp1
fabs       000 11110 .. 1 000001 10000 ..... .....       @fp1
fneg       000 11110 .. 1 000010 10000 ..... .....       @fp1
fsqrt      000 11110 .. 1 000011 10000 ..... .....       @fp1
fcvt_to_s  000 11110 .. 1 000100 10000 ..... .....       @fp1
fcvt_to_d  000 11110 .. 1 000101 10000 ..... .....       @fp1
fcvt_to_h  000 11110 .. 1 000111 10000 ..... .....       @fp1
frintn     000 11110 .. 1 001000 10000 ..... .....       @fp1
frintp     000 11110 .. 1 001001 10000 ..... .....       @fp1
frintm     000 11110 .. 1 001010 10000 ..... .....       @fp1
frintz     000 11110 .. 1 001011 10000 ..... .....       @fp1
frinta     000 11110 .. 1 001100 10000 ..... .....       @fp1
frintx     000 11110 .. 1 001110 10000 ..... .....       @fp1
frinti     000 11110 .. 1 001111 10000 ..... .....       @fp1
fmul       000 11110 .. 1 ..... 0000 10 ..... .....      @fp2
fdiv       000 11110 .. 1 ..... 0001 10 ..... .....      @fp2
fadd       000 11110 .. 1 ..... 0010 10 ..... .....      @fp2
fsub       000 11110 .. 1 ..... 0011 10 ..... .....      @fp2
fmax       000 11110 .. 1 ..... 0100 10 ..... .....      @fp2
fmin       000 11110 .. 1 ..... 0101 10 ..... .....      @fp2
fmaxnm     000 11110 .. 1 ..... 0110 10 ..... .....      @fp2
fminnm     000 11110 .. 1 ..... 0111 10 ..... .....      @fp2
fnmul      000 11110 .. 1 ..... 1000 10 ..... .....      @fp2
fmadd      000 11111 .. 0 ..... 0 ..... ..... .....      @fp3
fmsub      000 11111 .. 0 ..... 1 ..... ..... .....      @fp3
fnmadd     000 11111 .. 1 ..... 0 ..... ..... .....      @fp3
fnmsub     000 11111 .. 1 ..... 1 ..... ..... .....      @fp3
fcmp       000 11110 .. 1 ..... 00 1000 ..... 00 000     @fpcmp
fcmp_zero  000 11110 .. 1 ----- 00 1000 ..... 01 000     @fpcmp rm=0
fcmpe      000 11110 .. 1 ..... 00 1000 ..... 10 000     @fpcmp
fcmpe_zero 000 11110 .. 1 ----- 00 1000 ..... 11 000     @fpcmp rm=0
fccmp      000 11110 .. 1 ..... .... 01 ..... 0 ....     @fpccmp
fccmpe     000 11110 .. 1 ..... .... 01 ..... 1 ....     @fpccmp
fcsel      000 11110 .. 1 ..... .... 11 ..... .....      @fpcsel
fmov_imm   000 11110 .. 1 ........ 100 00000 .....       @fpimm
scvtf      . 00 11110 .. 1 00 010 000000 ..... .....     @fpcvt
ucvtf      . 00 11110 .. 1 00 011 000000 ..... .....     @fpcvt
fcvtns     . 00 11110 .. 1 00 000 000000 ..... .....     @fpcvt
fcvtnu     . 00 11110 .. 1 00 001 000000 ..... .....     @fpcvt
fcvtas     . 00 11110 .. 1 00 100 000000 ..... .....     @fpcvt
fcvtau     . 00 11110 .. 1 00 101 000000 ..... .....     @fpcvt
fcvtps     . 00 11110 .. 1 01 000 000000 ..... .....     @fpcvt
fcvtpu     . 00 11110 .. 1 01 001 000000 ..... .....     @fpcvt
fcvtms     . 00 11110 .. 1 10 000 000000 ..... .....     @fpcvt
fcvtmu     . 00 11110 .. 1 10 001 000000 ..... .....     @fpcvt
fcvtzs     . 00 11110 .. 1 11 000 000000 ..... .....     @fpcvt
scvtf_fix  . 00 11110 .. 0 00 010 ...... ..... .....     @fpfix
ucvtf_fix  . 00 11110 .. 0 00 011 ...... ..... .....     @fpfix
fcvtzs_fix . 00 11110 .. 0 11 000 ...... ..... .....     @fpfix
fcvtzu_fix . 00 11110 .. 0 11 001 ...... ..... .....     @fpfix
fcvtzu     . 00 11110 .. 1 11 001 000000 ..... .....     @fpcvt
# AdvSIMD data processing: each pattern runs its lane function (trans_simd.py).
# Three registers of the same type (Q U 01110 size 1 Rm opcode 1 Rn Rd).
add_v      0 . 0 01110 .. 1 ..... 10000 1 ..... .....    @simd3
sub_v      0 . 1 01110 .. 1 ..... 10000 1 ..... .....    @simd3
mul_v      0 . 0 01110 .. 1 ..... 10011 1 ..... .....    @simd3
cmeq_v     0 . 1 01110 .. 1 ..... 10001 1 ..... .....    @simd3
cmtst_v    0 . 0 01110 .. 1 ..... 10001 1 ..... .....    @simd3
cmgt_v     0 . 0 01110 .. 1 ..... 00110 1 ..... .....    @simd3
cmhi_v     0 . 1 01110 .. 1 ..... 00110 1 ..... .....    @simd3
cmge_v     0 . 0 01110 .. 1 ..... 00111 1 ..... .....    @simd3
cmhs_v     0 . 1 01110 .. 1 ..... 00111 1 ..... .....    @simd3
smax_v     0 . 0 01110 .. 1 ..... 01100 1 ..... .....    @simd3
umax_v     0 . 1 01110 .. 1 ..... 01100 1 ..... .....    @simd3
smin_v     0 . 0 01110 .. 1 ..... 01101 1 ..... .....    @simd3
umin_v     0 . 1 01110 .. 1 ..... 01101 1 ..... .....    @simd3
addp_v     0 . 0 01110 .. 1 ..... 10111 1 ..... .....    @simd3
smaxp_v    0 . 0 01110 .. 1 ..... 10100 1 ..... .....    @simd3
umaxp_v    0 . 1 01110 .. 1 ..... 10100 1 ..... .....    @simd3
sminp_v    0 . 0 01110 .. 1 ..... 10101 1 ..... .....    @simd3
uminp_v    0 . 1 01110 .. 1 ..... 10101 1 ..... .....    @simd3
and_v      0 . 0 01110 00 1 ..... 00011 1 ..... .....    @simd3
bic_v      0 . 0 01110 01 1 ..... 00011 1 ..... .....    @simd3
orr_v      0 . 0 01110 10 1 ..... 00011 1 ..... .....    @simd3
orn_v      0 . 0 01110 11 1 ..... 00011 1 ..... .....    @simd3
eor_v      0 . 1 01110 00 1 ..... 00011 1 ..... .....    @simd3
bsl_v      0 . 1 01110 01 1 ..... 00011 1 ..... .....    @simd3
bit_v      0 . 1 01110 10 1 ..... 00011 1 ..... .....    @simd3
bif_v      0 . 1 01110 11 1 ..... 00011 1 ..... .....    @simd3
shadd_v    0 . 0 01110 .. 1 ..... 00000 1 ..... .....    @simd3
uhadd_v    0 . 1 01110 .. 1 ..... 00000 1 ..... .....    @simd3
sqadd_v    0 . 0 01110 .. 1 ..... 00001 1 ..... .....    @simd3
uqadd_v    0 . 1 01110 .. 1 ..... 00001 1 ..... .....    @simd3
srhadd_v   0 . 0 01110 .. 1 ..... 00010 1 ..... .....    @simd3
urhadd_v   0 . 1 01110 .. 1 ..... 00010 1 ..... .....    @simd3
shsub_v    0 . 0 01110 .. 1 ..... 00100 1 ..... .....    @simd3
uhsub_v    0 . 1 01110 .. 1 ..... 00100 1 ..... .....    @simd3
sqsub_v    0 . 0 01110 .. 1 ..... 00101 1 ..... .....    @simd3
uqsub_v    0 . 1 01110 .. 1 ..... 00101 1 ..... .....    @simd3
sshl_v     0 . 0 01110 .. 1 ..... 01000 1 ..... .....    @simd3
ushl_v     0 . 1 01110 .. 1 ..... 01000 1 ..... .....    @simd3
sqshl_v    0 . 0 01110 .. 1 ..... 01001 1 ..... .....    @simd3
uqshl_v    0 . 1 01110 .. 1 ..... 01001 1 ..... .....    @simd3
srshl_v    0 . 0 01110 .. 1 ..... 01010 1 ..... .....    @simd3
urshl_v    0 . 1 01110 .. 1 ..... 01010 1 ..... .....    @simd3
sqrshl_v   0 . 0 01110 .. 1 ..... 01011 1 ..... .....    @simd3
uqrshl_v   0 . 1 01110 .. 1 ..... 01011 1 ..... .....    @simd3
sabd_v     0 . 0 01110 .. 1 ..... 01110 1 ..... .....    @simd3
uabd_v     0 . 1 01110 .. 1 ..... 01110 1 ..... .....    @simd3
saba_v     0 . 0 01110 .. 1 ..... 01111 1 ..... .....    @simd3
uaba_v     0 . 1 01110 .. 1 ..... 01111 1 ..... .....    @simd3
mla_v      0 . 0 01110 .. 1 ..... 10010 1 ..... .....    @simd3
mls_v      0 . 1 01110 .. 1 ..... 10010 1 ..... .....    @simd3
pmul_v     0 . 1 01110 .. 1 ..... 10011 1 ..... .....    @simd3
sqdmulh_v  0 . 0 01110 .. 1 ..... 10110 1 ..... .....    @simd3
sqrdmulh_v 0 . 1 01110 .. 1 ..... 10110 1 ..... .....    @simd3
# Scalar three same (01 U 11110 size 1 Rm opcode 1 Rn Rd).
sqadd_s    01 0 11110 .. 1 ..... 00001 1 ..... .....     @simd3s
uqadd_s    01 1 11110 .. 1 ..... 00001 1 ..... .....     @simd3s
sqsub_s    01 0 11110 .. 1 ..... 00101 1 ..... .....     @simd3s
uqsub_s    01 1 11110 .. 1 ..... 00101 1 ..... .....     @simd3s
cmgt_s     01 0 11110 .. 1 ..... 00110 1 ..... .....     @simd3s
cmhi_s     01 1 11110 .. 1 ..... 00110 1 ..... .....     @simd3s
cmge_s     01 0 11110 .. 1 ..... 00111 1 ..... .....     @simd3s
cmhs_s     01 1 11110 .. 1 ..... 00111 1 ..... .....     @simd3s
sshl_s     01 0 11110 .. 1 ..... 01000 1 ..... .....     @simd3s
ushl_s     01 1 11110 .. 1 ..... 01000 1 ..... .....     @simd3s
sqshl_s    01 0 11110 .. 1 ..... 01001 1 ..... .....     @simd3s
uqshl_s    01 1 11110 .. 1 ..... 01001 1 ..... .....     @simd3s
srshl_s    01 0 11110 .. 1 ..... 01010 1 ..... .....     @simd3s
urshl_s    01 1 11110 .. 1 ..... 01010 1 ..... .....     @simd3s
sqrshl_s   01 0 11110 .. 1 ..... 01011 1 ..... .....     @simd3s
uqrshl_s   01 1 11110 .. 1 ..... 01011 1 ..... .....     @simd3s
add_s      01 0 11110 .. 1 ..... 10000 1 ..... .....     @simd3s
sub_s      01 1 11110 .. 1 ..... 10000 1 ..... .....     @simd3s
cmtst_s    01 0 11110 .. 1 ..... 10001 1 ..... .....     @simd3s
cmeq_s     01 1 11110 .. 1 ..... 10001 1 ..... .....     @simd3s
sqdmulh_s  01 0 11110 .. 1 ..... 10110 1 ..... .....     @simd3s
sqrdmulh_s 01 1 11110 .. 1 ..... 10110 1 ..... .....     @simd3s
# Three registers of different types (Q U 01110 size 1 Rm opcode 00 Rn Rd).
saddl_v    0 . 0 01110 .. 1 ..... 0000 00 ..... .....    @simd3
uaddl_v    0 . 1 01110 .. 1 ..... 0000 00 ..... .....    @simd3
saddw_v    0 . 0 01110 .. 1 ..... 0001 00 ..... .....    @simd3
uaddw_v    0 . 1 01110 .. 1 ..... 0001 00 ..... .....    @simd3
ssubl_v    0 . 0 01110 .. 1 ..... 0010 00 ..... .....    @simd3
usubl_v    0 . 1 01110 .. 1 ..... 0010 00 ..... .....    @simd3
smull_v    0 . 0 01110 .. 1 ..... 1100 00 ..... .....    @simd3
umull_v    0 . 1 01110 .. 1 ..... 1100 00 ..... .....    @simd3
ssubw_v    0 . 0 01110 .. 1 ..... 0011 00 ..... .....    @simd3
usubw_v    0 . 1 01110 .. 1 ..... 0011 00 ..... .....    @simd3
addhn_v    0 . 0 01110 .. 1 ..... 0100 00 ..... .....    @simd3
raddhn_v   0 . 1 01110 .. 1 ..... 0100 00 ..... .....    @simd3
sabal_v    0 . 0 01110 .. 1 ..... 0101 00 ..... .....    @simd3
uabal_v    0 . 1 01110 .. 1 ..... 0101 00 ..... .....    @simd3
subhn_v    0 . 0 01110 .. 1 ..... 0110 00 ..... .....    @simd3
rsubhn_v   0 . 1 01110 .. 1 ..... 0110 00 ..... .....    @simd3
sabdl_v    0 . 0 01110 .. 1 ..... 0111 00 ..... .....    @simd3
uabdl_v    0 . 1 01110 .. 1 ..... 0111 00 ..... .....    @simd3
smlal_v    0 . 0 01110 .. 1 ..... 1000 00 ..... .....    @simd3
umlal_v    0 . 1 01110 .. 1 ..... 1000 00 ..... .....    @simd3
sqdmlal_v  0 . 0 01110 .. 1 ..... 1001 00 ..... .....    @simd3
smlsl_v    0 . 0 01110 .. 1 ..... 1010 00 ..... .....    @simd3
umlsl_v    0 . 1 01110 .. 1 ..... 1010 00 ..... .....    @simd3
sqdmlsl_v  0 . 0 01110 .. 1 ..... 1011 00 ..... .....    @simd3
sqdmull_v  0 . 0 01110 .. 1 ..... 1101 00 ..... .....    @simd3
pmull_v    0 . 0 01110 .. 1 ..... 1110 00 ..... .....    @simd3
# Scalar three different (01 U 11110 size 1 Rm opcode 00 Rn Rd).
sqdmlal_s  01 0 11110 .. 1 ..... 1001 00 ..... .....     @simd3s
sqdmlsl_s  01 0 11110 .. 1 ..... 1011 00 ..... .....     @simd3s
sqdmull_s  01 0 11110 .. 1 ..... 1101 00 ..... .....     @simd3s
# Two-register miscellaneous (Q U 01110 size 10000 opcode 10 Rn Rd).
rev64_v    0 . 0 01110 .. 10000 00000 10 ..... .....     @simd2
rev32_v    0 . 1 01110 .. 10000 00000 10 ..... .....     @simd2
rev16_v    0 . 0 01110 .. 10000 00001 10 ..... .....     @simd2
cnt_v      0 . 0 01110 00 10000 00101 10 ..... .....     @simd2
not_v      0 . 1 01110 00 10000 00101 10 ..... .....     @simd2
rbit_v     0 . 1 01110 01 10000 00101 10 ..... .....     @simd2
cmgt0_v    0 . 0 01110 .. 10000 01000 10 ..... .....     @simd2
cmge0_v    0 . 1 01110 .. 10000 01000 10 ..... .....     @simd2
cmeq0_v    0 . 0 01110 .. 10000 01001 10 ..... .....     @simd2
cmle0_v    0 . 1 01110 .. 10000 01001 10 ..... .....     @simd2
cmlt0_v    0 . 0 01110 .. 10000 01010 10 ..... .....     @simd2
abs_v      0 . 0 01110 .. 10000 01011 10 ..... .....     @simd2
neg_v      0 . 1 01110 .. 10000 01011 10 ..... .....     @simd2
xtn_v      0 . 0 01110 .. 10000 10010 10 ..... .....     @simd2
sqxtun_v   0 . 1 01110 .. 10000 10010 10 ..... .....     @simd2
sqxtn_v    0 . 0 01110 .. 10000 10100 10 ..... .....     @simd2
uqxtn_v    0 . 1 01110 .. 10000 10100 10 ..... .....     @simd2
shll_v     0 . 1 01110 .. 10000 10011 10 ..... .....     @simd2
suqadd_v   0 . 0 01110 .. 10000 00011 10 ..... .....     @simd2
usqadd_v   0 . 1 01110 .. 10000 00011 10 ..... .....     @simd2
cls_v      0 . 0 01110 .. 10000 00100 10 ..... .....     @simd2
clz_v      0 . 1 01110 .. 10000 00100 10 ..... .....     @simd2
sqabs_v    0 . 0 01110 .. 10000 00111 10 ..... .....     @simd2
sqneg_v    0 . 1 01110 .. 10000 00111 10 ..... .....     @simd2
saddlp_v   0 . 0 01110 .. 10000 00010 10 ..... .....     @simd2
uaddlp_v   0 . 1 01110 .. 10000 00010 10 ..... .....     @simd2
sadalp_v   0 . 0 01110 .. 10000 00110 10 ..... .....     @simd2
uadalp_v   0 . 1 01110 .. 10000 00110 10 ..... .....     @simd2
# Scalar two-register miscellaneous (01 U 11110 size 10000 opcode 10 Rn Rd).
suqadd_s   01 0 11110 .. 10000 00011 10 ..... .....      @simd2s
usqadd_s   01 1 11110 .. 10000 00011 10 ..... .....      @simd2s
sqabs_s    01 0 11110 .. 10000 00111 10 ..... .....      @simd2s
sqneg_s    01 1 11110 .. 10000 00111 10 ..... .....      @simd2s
cmgt0_s    01 0 11110 .. 10000 01000 10 ..... .....      @simd2s
cmge0_s    01 1 11110 .. 10000 01000 10 ..... .....      @simd2s
cmeq0_s    01 0 11110 .. 10000 01001 10 ..... .....      @simd2s
cmle0_s    01 1 11110 .. 10000 01001 10 ..... .....      @simd2s
cmlt0_s    01 0 11110 .. 10000 01010 10 ..... .....      @simd2s
abs_s      01 0 11110 .. 10000 01011 10 ..... .....      @simd2s
neg_s      01 1 11110 .. 10000 01011 10 ..... .....      @simd2s
sqxtun_s   01 1 11110 .. 10000 10010 10 ..... .....      @simd2s
sqxtn_s    01 0 11110 .. 10000 10100 10 ..... .....      @simd2s
uqxtn_s    01 1 11110 .. 10000 10100 10 ..... .....      @simd2s
# Across lanes (Q U 01110 size 11000 opcode 10 Rn Rd).
saddlv_v   0 . 0 01110 .. 11000 00011 10 ..... .....     @simd2
uaddlv_v   0 . 1 01110 .. 11000 00011 10 ..... .....     @simd2
smaxv_v    0 . 0 01110 .. 11000 01010 10 ..... .....     @simd2
umaxv_v    0 . 1 01110 .. 11000 01010 10 ..... .....     @simd2
sminv_v    0 . 0 01110 .. 11000 11010 10 ..... .....     @simd2
uminv_v    0 . 1 01110 .. 11000 11010 10 ..... .....     @simd2
addv_v     0 . 0 01110 .. 11000 11011 10 ..... .....     @simd2
# Scalar pairwise ADDP (Dd = Vn.D[0] + Vn.D[1]).
addp_s     01 0 11110 11 11000 11011 10 ..... .....      @simd2 q=1
# Copy (Q op 01110000 imm5 0 imm4 1 Rn Rd).
dup_elem   0 . 0 01110000 ..... 0 0000 1 ..... .....     @simd_copy
dup_gp     0 . 0 01110000 ..... 0 0001 1 ..... .....     @simd_copy
smov       0 . 0 01110000 ..... 0 0101 1 ..... .....     @simd_copy
umov       0 . 0 01110000 ..... 0 0111 1 ..... .....     @simd_copy
ins_gp     0 1 0 01110000 ..... 0 0011 1 ..... .....     @simd_copy
ins_elem   0 1 1 01110000 ..... 0 .... 1 ..... .....     @simd_copy4
dup_s      01 0 11110000 ..... 0 0000 1 ..... .....      @simd_copy q=0
# Vector and scalar x indexed element (Q U 01111 size L M Rm opcode H 0 Rn Rd).
mla_elem   0 . 1 01111 .. . . .... 0000 . 0 ..... .....  @simd_elem
smlal_elem 0 . 0 01111 .. . . .... 0010 . 0 ..... .....  @simd_elem
umlal_elem 0 . 1 01111 .. . . .... 0010 . 0 ..... .....  @simd_elem
sqdmlal_elem 0 . 0 01111 .. . . .... 0011 . 0 ..... .....  @simd_elem
mls_elem   0 . 1 01111 .. . . .... 0100 . 0 ..... .....  @simd_elem
smlsl_elem 0 . 0 01111 .. . . .... 0110 . 0 ..... .....  @simd_elem
umlsl_elem 0 . 1 01111 .. . . .... 0110 . 0 ..... .....  @simd_elem
sqdmlsl_elem 0 . 0 01111 .. . . .... 0111 . 0 ..... .....  @simd_elem
mul_elem   0 . 0 01111 .. . . .... 1000 . 0 ..... .....  @simd_elem
smull_elem 0 . 0 01111 .. . . .... 1010 . 0 ..... .....  @simd_elem
umull_elem 0 . 1 01111 .. . . .... 1010 . 0 ..... .....  @simd_elem
sqdmull_elem 0 . 0 01111 .. . . .... 1011 . 0 ..... .....  @simd_elem
sqdmulh_elem 0 . 0 01111 .. . . .... 1100 . 0 ..... .....  @simd_elem
sqrdmulh_elem 0 . 0 01111 .. . . .... 1101 . 0 ..... .....  @simd_elem
sqdmlal_elem_s 01 0 11111 .. . . .... 0011 . 0 ..... .....  @simd_elems
sqdmlsl_elem_s 01 0 11111 .. . . .... 0111 . 0 ..... .....  @simd_elems
sqdmull_elem_s 01 0 11111 .. . . .... 1011 . 0 ..... .....  @simd_elems
sqdmulh_elem_s 01 0 11111 .. . . .... 1100 . 0 ..... .....  @simd_elems
sqrdmulh_elem_s 01 0 11111 .. . . .... 1101 . 0 ..... .....  @simd_elems
# Modified immediate (Q op 0111100000 abc cmode o2 1 defgh Rd) is the immh = 0 corner
# of shift by immediate (Q U 011110 immh immb opcode 1 Rn Rd); shifts need immh != 0.
{
  movi       0 . . 0111100000 ... .... 0 1 ..... .....   @simd_modimm
  sshr_v     0 . 0 011110 .... ... 00000 1 ..... .....   @simd_shift
  ushr_v     0 . 1 011110 .... ... 00000 1 ..... .....   @simd_shift
  ssra_v     0 . 0 011110 .... ... 00010 1 ..... .....   @simd_shift
  usra_v     0 . 1 011110 .... ... 00010 1 ..... .....   @simd_shift
  sri_v      0 . 1 011110 .... ... 01000 1 ..... .....   @simd_shift
  shl_v      0 . 0 011110 .... ... 01010 1 ..... .....   @simd_shift
  sli_v      0 . 1 011110 .... ... 01010 1 ..... .....   @simd_shift
  shrn_v     0 . 0 011110 .... ... 10000 1 ..... .....   @simd_shift
  sshll_v    0 . 0 011110 .... ... 10100 1 ..... .....   @simd_shift
  ushll_v    0 . 1 011110 .... ... 10100 1 ..... .....   @simd_shift
  srshr_v    0 . 0 011110 .... ... 00100 1 ..... .....   @simd_shift
  urshr_v    0 . 1 011110 .... ... 00100 1 ..... .....   @simd_shift
  srsra_v    0 . 0 011110 .... ... 00110 1 ..... .....   @simd_shift
  ursra_v    0 . 1 011110 .... ... 00110 1 ..... .....   @simd_shift
  sqshlu_v   0 . 1 011110 .... ... 01100 1 ..... .....   @simd_shift
  sqshl_imm_v 0 . 0 011110 .... ... 01110 1 ..... .....  @simd_shift
  uqshl_imm_v 0 . 1 011110 .... ... 01110 1 ..... .....  @simd_shift
  sqshrun_v  0 . 1 011110 .... ... 10000 1 ..... .....   @simd_shift
  rshrn_v    0 . 0 011110 .... ... 10001 1 ..... .....   @simd_shift
  sqrshrun_v 0 . 1 011110 .... ... 10001 1 ..... .....   @simd_shift
  sqshrn_v   0 . 0 011110 .... ... 10010 1 ..... .....   @simd_shift
  uqshrn_v   0 . 1 011110 .... ... 10010 1 ..... .....   @simd_shift
  sqrshrn_v  0 . 0 011110 .... ... 10011 1 ..... .....   @simd_shift
  uqrshrn_v  0 . 1 011110 .... ... 10011 1 ..... .....   @simd_shift
  scvtf_fix_v 0 . 0 011110 .... ... 11100 1 ..... .....  @simd_shift
  ucvtf_fix_v 0 . 1 011110 .... ... 11100 1 ..... .....  @simd_shift
  fcvtzs_fix_v 0 . 0 011110 .... ... 11111 1 ..... ..... @simd_shift
  fcvtzu_fix_v 0 . 1 011110 .... ... 11111 1 ..... ..... @simd_shift
}
# Scalar shift by immediate (01 U 111110 immh immb opcode 1 Rn Rd).
sshr_s     01 0 111110 .... ... 00000 1 ..... .....      @simd_shifts
ushr_s     01 1 111110 .... ... 00000 1 ..... .....      @simd_shifts
ssra_s     01 0 111110 .... ... 00010 1 ..... .....      @simd_shifts
usra_s     01 1 111110 .... ... 00010 1 ..... .....      @simd_shifts
srshr_s    01 0 111110 .... ... 00100 1 ..... .....      @simd_shifts
urshr_s    01 1 111110 .... ... 00100 1 ..... .....      @simd_shifts
srsra_s    01 0 111110 .... ... 00110 1 ..... .....      @simd_shifts
ursra_s    01 1 111110 .... ... 00110 1 ..... .....      @simd_shifts
sri_s      01 1 111110 .... ... 01000 1 ..... .....      @simd_shifts
shl_s      01 0 111110 .... ... 01010 1 ..... .....      @simd_shifts
sli_s      01 1 111110 .... ... 01010 1 ..... .....      @simd_shifts
sqshlu_s   01 1 111110 .... ... 01100 1 ..... .....      @simd_shifts
sqshl_imm_s 01 0 111110 .... ... 01110 1 ..... .....     @simd_shifts
uqshl_imm_s 01 1 111110 .... ... 01110 1 ..... .....     @simd_shifts
sqshrun_s  01 1 111110 .... ... 10000 1 ..... .....      @simd_shifts
sqrshrun_s 01 1 111110 .... ... 10001 1 ..... .....      @simd_shifts
sqshrn_s   01 0 111110 .... ... 10010 1 ..... .....      @simd_shifts
uqshrn_s   01 1 111110 .... ... 10010 1 ..... .....      @simd_shifts
sqrshrn_s  01 0 111110 .... ... 10011 1 ..... .....      @simd_shifts
uqrshrn_s  01 1 111110 .... ... 10011 1 ..... .....      @simd_shifts
scvtf_fix_s 01 0 111110 .... ... 11100 1 ..... .....     @simd_shifts
ucvtf_fix_s 01 1 111110 .... ... 11100 1 ..... .....     @simd_shifts
fcvtzs_fix_s 01 0 111110 .... ... 11111 1 ..... .....    @simd_shifts
fcvtzu_fix_s 01 1 111110 .... ... 11111 1 ..... .....    @simd_shifts
# AdvSIMD floating point (trans_fpsimd.py): Q U 01110 a sz 1 Rm opcode 1 Rn Rd (vector),
# 01 U 11110 a sz ... (scalar); sz picks single or double.
fmaxnm_v   0 . 0 01110 0 . 1 ..... 11000 1 ..... .....   @simd3
fmla_v     0 . 0 01110 0 . 1 ..... 11001 1 ..... .....   @simd3
fadd_v     0 . 0 01110 0 . 1 ..... 11010 1 ..... .....   @simd3
fcmeq_v    0 . 0 01110 0 . 1 ..... 11100 1 ..... .....   @simd3
fmax_v     0 . 0 01110 0 . 1 ..... 11110 1 ..... .....   @simd3
fminnm_v   0 . 0 01110 1 . 1 ..... 11000 1 ..... .....   @simd3
fmls_v     0 . 0 01110 1 . 1 ..... 11001 1 ..... .....   @simd3
fsub_v     0 . 0 01110 1 . 1 ..... 11010 1 ..... .....   @simd3
fmin_v     0 . 0 01110 1 . 1 ..... 11110 1 ..... .....   @simd3
fmaxnmp_v  0 . 1 01110 0 . 1 ..... 11000 1 ..... .....   @simd3
faddp_v    0 . 1 01110 0 . 1 ..... 11010 1 ..... .....   @simd3
fmul_v     0 . 1 01110 0 . 1 ..... 11011 1 ..... .....   @simd3
fcmge_v    0 . 1 01110 0 . 1 ..... 11100 1 ..... .....   @simd3
facge_v    0 . 1 01110 0 . 1 ..... 11101 1 ..... .....   @simd3
fmaxp_v    0 . 1 01110 0 . 1 ..... 11110 1 ..... .....   @simd3
fdiv_v     0 . 1 01110 0 . 1 ..... 11111 1 ..... .....   @simd3
fminnmp_v  0 . 1 01110 1 . 1 ..... 11000 1 ..... .....   @simd3
fabd_v     0 . 1 01110 1 . 1 ..... 11010 1 ..... .....   @simd3
fcmgt_v    0 . 1 01110 1 . 1 ..... 11100 1 ..... .....   @simd3
facgt_v    0 . 1 01110 1 . 1 ..... 11101 1 ..... .....   @simd3
fminp_v    0 . 1 01110 1 . 1 ..... 11110 1 ..... .....   @simd3
fmulx_v    0 . 0 01110 0 . 1 ..... 11011 1 ..... .....   @simd3
frecps_v   0 . 0 01110 0 . 1 ..... 11111 1 ..... .....   @simd3
frsqrts_v  0 . 0 01110 1 . 1 ..... 11111 1 ..... .....   @simd3
fmulx_s    01 0 11110 0 . 1 ..... 11011 1 ..... .....    @simd3s
frecps_s   01 0 11110 0 . 1 ..... 11111 1 ..... .....    @simd3s
frsqrts_s  01 0 11110 1 . 1 ..... 11111 1 ..... .....    @simd3s
frecpx_s   01 0 11110 1 . 10000 11111 10 ..... .....     @simd2s
frecpe_v   0 . 0 01110 1 . 10000 11101 10 ..... .....    @simd2
frsqrte_v  0 . 1 01110 1 . 10000 11101 10 ..... .....    @simd2
urecpe_v   0 . 0 01110 1 . 10000 11100 10 ..... .....    @simd2
ursqrte_v  0 . 1 01110 1 . 10000 11100 10 ..... .....    @simd2
frecpe_s   01 0 11110 1 . 10000 11101 10 ..... .....     @simd2s
frsqrte_s  01 1 11110 1 . 10000 11101 10 ..... .....     @simd2s
fcvtxn_v   0 . 1 01110 0 . 10000 10110 10 ..... .....    @simd2
fcvtxn_s   01 1 11110 0 . 10000 10110 10 ..... .....     @simd2s
fcmeq_s    01 0 11110 0 . 1 ..... 11100 1 ..... .....    @simd3s
fcmge_s    01 1 11110 0 . 1 ..... 11100 1 ..... .....    @simd3s
facge_s    01 1 11110 0 . 1 ..... 11101 1 ..... .....    @simd3s
fabd_s     01 1 11110 1 . 1 ..... 11010 1 ..... .....    @simd3s
fcmgt_s    01 1 11110 1 . 1 ..... 11100 1 ..... .....    @simd3s
facgt_s    01 1 11110 1 . 1 ..... 11101 1 ..... .....    @simd3s
fcvtn_v    0 . 0 01110 0 . 10000 10110 10 ..... .....    @simd2
fcvtl_v    0 . 0 01110 0 . 10000 10111 10 ..... .....    @simd2
frintn_v   0 . 0 01110 0 . 10000 11000 10 ..... .....    @simd2
frintm_v   0 . 0 01110 0 . 10000 11001 10 ..... .....    @simd2
fcvtns_v   0 . 0 01110 0 . 10000 11010 10 ..... .....    @simd2
fcvtms_v   0 . 0 01110 0 . 10000 11011 10 ..... .....    @simd2
fcvtas_v   0 . 0 01110 0 . 10000 11100 10 ..... .....    @simd2
scvtf_v    0 . 0 01110 0 . 10000 11101 10 ..... .....    @simd2
fcmgt0_v   0 . 0 01110 1 . 10000 01100 10 ..... .....    @simd2
fcmeq0_v   0 . 0 01110 1 . 10000 01101 10 ..... .....    @simd2
fcmlt0_v   0 . 0 01110 1 . 10000 01110 10 ..... .....    @simd2
fabs_v     0 . 0 01110 1 . 10000 01111 10 ..... .....    @simd2
frintp_v   0 . 0 01110 1 . 10000 11000 10 ..... .....    @simd2
frintz_v   0 . 0 01110 1 . 10000 11001 10 ..... .....    @simd2
fcvtps_v   0 . 0 01110 1 . 10000 11010 10 ..... .....    @simd2
fcvtzs_v   0 . 0 01110 1 . 10000 11011 10 ..... .....    @simd2
frinta_v   0 . 1 01110 0 . 10000 11000 10 ..... .....    @simd2
frintx_v   0 . 1 01110 0 . 10000 11001 10 ..... .....    @simd2
fcvtnu_v   0 . 1 01110 0 . 10000 11010 10 ..... .....    @simd2
fcvtmu_v   0 . 1 01110 0 . 10000 11011 10 ..... .....    @simd2
fcvtau_v   0 . 1 01110 0 . 10000 11100 10 ..... .....    @simd2
ucvtf_v    0 . 1 01110 0 . 10000 11101 10 ..... .....    @simd2
fcmge0_v   0 . 1 01110 1 . 10000 01100 10 ..... .....    @simd2
fcmle0_v   0 . 1 01110 1 . 10000 01101 10 ..... .....    @simd2
fneg_v     0 . 1 01110 1 . 10000 01111 10 ..... .....    @simd2
frinti_v   0 . 1 01110 1 . 10000 11001 10 ..... .....    @simd2
fcvtpu_v   0 . 1 01110 1 . 10000 11010 10 ..... .....    @simd2
fcvtzu_v   0 . 1 01110 1 . 10000 11011 10 ..... .....    @simd2
fsqrt_v    0 . 1 01110 1 . 10000 11111 10 ..... .....    @simd2
fcvtns_s   01 0 11110 0 . 10000 11010 10 ..... .....     @simd2s
fcvtms_s   01 0 11110 0 . 10000 11011 10 ..... .....     @simd2s
fcvtas_s   01 0 11110 0 . 10000 11100 10 ..... .....     @simd2s
scvtf_s    01 0 11110 0 . 10000 11101 10 ..... .....     @simd2s
fcmgt0_s   01 0 11110 1 . 10000 01100 10 ..... .....     @simd2s
fcmeq0_s   01 0 11110 1 . 10000 01101 10 ..... .....     @simd2s
fcmlt0_s   01 0 11110 1 . 10000 01110 10 ..... .....     @simd2s
fcvtps_s   01 0 11110 1 . 10000 11010 10 ..... .....     @simd2s
fcvtzs_s   01 0 11110 1 . 10000 11011 10 ..... .....     @simd2s
fcvtnu_s   01 1 11110 0 . 10000 11010 10 ..... .....     @simd2s
fcvtmu_s   01 1 11110 0 . 10000 11011 10 ..... .....     @simd2s
fcvtau_s   01 1 11110 0 . 10000 11100 10 ..... .....     @simd2s
ucvtf_s    01 1 11110 0 . 10000 11101 10 ..... .....     @simd2s
fcmge0_s   01 1 11110 1 . 10000 01100 10 ..... .....     @simd2s
fcmle0_s   01 1 11110 1 . 10000 01101 10 ..... .....     @simd2s
fcvtpu_s   01 1 11110 1 . 10000 11010 10 ..... .....     @simd2s
fcvtzu_s   01 1 11110 1 . 10000 11011 10 ..... .....     @simd2s
fmaxnmp_s  01 1 11110 0 . 11000 01100 10 ..... .....     @simd2s
faddp_s    01 1 11110 0 . 11000 01101 10 ..... .....     @simd2s
fmaxp_s    01 1 11110 0 . 11000 01111 10 ..... .....     @simd2s
fminnmp_s  01 1 11110 1 . 11000 01100 10 ..... .....     @simd2s
fminp_s    01 1 11110 1 . 11000 01111 10 ..... .....     @simd2s
fmaxnmv_v  0 . 1 01110 0 . 11000 01100 10 ..... .....    @simd2
fmaxv_v    0 . 1 01110 0 . 11000 01111 10 ..... .....    @simd2
fminnmv_v  0 . 1 01110 1 . 11000 01100 10 ..... .....    @simd2
fminv_v    0 . 1 01110 1 . 11000 01111 10 ..... .....    @simd2
fmla_elem  0 . 0 01111 1 . . . .... 0001 . 0 ..... ..... @simd_elem
fmls_elem  0 . 0 01111 1 . . . .... 0101 . 0 ..... ..... @simd_elem
fmul_elem  0 . 0 01111 1 . . . .... 1001 . 0 ..... ..... @simd_elem
fmla_elem_s 01 0 11111 1 . . . .... 0001 . 0 ..... ..... @simd_elems
fmls_elem_s 01 0 11111 1 . . . .... 0101 . 0 ..... ..... @simd_elems
fmul_elem_s 01 0 11111 1 . . . .... 1001 . 0 ..... ..... @simd_elems
fmulx_elem 0 . 1 01111 1 . . . .... 1001 . 0 ..... ..... @simd_elem
fmulx_elem_s 01 1 11111 1 . . . .... 1001 . 0 ..... ..... @simd_elems
# The cryptographic extension (AES, SHA-1, SHA-256; PMULL is with the long forms).
aese       01001110 00 10100 00100 10 ..... .....        @simd2 q=1 size=0
aesd       01001110 00 10100 00101 10 ..... .....        @simd2 q=1 size=0
aesmc      01001110 00 10100 00110 10 ..... .....        @simd2 q=1 size=0
aesimc     01001110 00 10100 00111 10 ..... .....        @simd2 q=1 size=0
sha1c      01011110 00 0 ..... 0 000 00 ..... .....      @simd3 q=1 size=0
sha1p      01011110 00 0 ..... 0 001 00 ..... .....      @simd3 q=1 size=0
sha1m      01011110 00 0 ..... 0 010 00 ..... .....      @simd3 q=1 size=0
sha1su0    01011110 00 0 ..... 0 011 00 ..... .....      @simd3 q=1 size=0
sha256h    01011110 00 0 ..... 0 100 00 ..... .....      @simd3 q=1 size=0
sha256h2   01011110 00 0 ..... 0 101 00 ..... .....      @simd3 q=1 size=0
sha256su1  01011110 00 0 ..... 0 110 00 ..... .....      @simd3 q=1 size=0
sha1h      01011110 00 10100 00000 10 ..... .....        @simd2 q=1 size=0
sha1su1    01011110 00 10100 00001 10 ..... .....        @simd2 q=1 size=0
sha256su0  01011110 00 10100 00010 10 ..... .....        @simd2 q=1 size=0
# Permute, extract, table lookup.
uzp1_v     0 . 001110 .. 0 ..... 0 001 10 ..... .....    @simd3
trn1_v     0 . 001110 .. 0 ..... 0 010 10 ..... .....    @simd3
zip1_v     0 . 001110 .. 0 ..... 0 011 10 ..... .....    @simd3
uzp2_v     0 . 001110 .. 0 ..... 0 101 10 ..... .....    @simd3
trn2_v     0 . 001110 .. 0 ..... 0 110 10 ..... .....    @simd3
zip2_v     0 . 001110 .. 0 ..... 0 111 10 ..... .....    @simd3
ext_v      0 . 101110 00 0 ..... 0 .... 0 ..... .....    @simd_ext
tbl_v      0 . 001110 00 0 ..... 0 .. 0 00 ..... .....   @simd_tbl
tbx_v      0 . 001110 00 0 ..... 0 .. 1 00 ..... .....   @simd_tbl
"""

FUNCTIONS: dict = {}

INSN: DecodeTable = build_table(PATTERNS, name="aarch64/a64", width=32, functions=FUNCTIONS)
