"""RV64C 16-bit instruction patterns, decoded into the 32-bit argument sets.

Each compressed pattern names the 32-bit translator it expands to (``-> addi``) and fills
that translator's argument set, implicit registers included (c.addi16sp: rd=rs1=sp), the
way the RVC chapter of the unprivileged spec defines each one as an expansion.  So
compressed code needs no translators of its own, only these tables.

Reserved encodings are ``!reserved`` patterns at the head of a ``{ }`` group: a word
matching one is illegal even though a later pattern of the group would match it.
Encodings the spec calls HINTs (c.li/c.lui/c.mv/c.add/c.slli with rd=0, c.addi with
imm=0, shifts by 0) are not reserved: they expand to instructions without effect.
Quadrant 0 funct3=100 and the RV64 c.subw/c.addw neighbours (100 1 11 ... 1x) are
reserved simply by having no pattern.
"""

from __future__ import annotations

from ..decodetree import DecodeTable, build_table
from .insn32 import INSN32
from .pregenerated import FIELD_FUNCTIONS, pregenerated

PATTERNS = r"""
# ---- fields ---------------------------------------------------------------------
%r             7:5                       # rd / rs1 of CI and CR formats
%rs2_5         2:5
%rs1_3         7:3   !function=ex_rvc_register
%rs2_3         2:3   !function=ex_rvc_register

%imm_ci        12:s1 2:5
%imm_addi16sp  12:s1 3:2 5:1 2:1 6:1     <<4
%imm_lui       12:s1 2:5                 <<12
%nzuimm_ciw    7:4 11:2 5:1 6:1          <<2
%uimm_cl_w     5:1 10:3 6:1              <<2
%uimm_cl_d     5:2 10:3                  <<3
%uimm_lwsp     2:2 12:1 4:3              <<2
%uimm_ldsp     2:3 12:1 5:2              <<3
%uimm_swsp     7:2 9:4                   <<2
%uimm_sdsp     7:3 10:3                  <<3
%imm_cb        12:s1 5:2 2:1 10:2 3:2    <<1
%imm_cj        12:s1 8:1 9:2 6:1 7:1 2:1 11:1 3:3  <<1
%shamt_c       12:1 2:5

# ---- formats (argument sets come from insn32) -----------------------------------
@ciw           &i      rd=%rs2_3 rs1=2 imm=%nzuimm_ciw
@cl_w          &i      rd=%rs2_3 rs1=%rs1_3 imm=%uimm_cl_w
@cl_d          &i      rd=%rs2_3 rs1=%rs1_3 imm=%uimm_cl_d
@cs_w          &s      rs2=%rs2_3 rs1=%rs1_3 imm=%uimm_cl_w
@cs_d          &s      rs2=%rs2_3 rs1=%rs1_3 imm=%uimm_cl_d
@ci            &i      rd=%r rs1=%r imm=%imm_ci
@c_addi16sp    &i      rd=2 rs1=2 imm=%imm_addi16sp
@c_lui         &u      rd=%r imm=%imm_lui
@c_shift       &shift  rd=%rs1_3 rs1=%rs1_3 shamt=%shamt_c
@c_shift2      &shift  rd=%r rs1=%r shamt=%shamt_c
@c_andi        &i      rd=%rs1_3 rs1=%rs1_3 imm=%imm_ci
@cs_2          &r      rd=%rs1_3 rs1=%rs1_3 rs2=%rs2_3
@cj            &j      rd=0 imm=%imm_cj
@cb_z          &b      rs1=%rs1_3 rs2=0 imm=%imm_cb
@c_lwsp        &i      rd=%r rs1=2 imm=%uimm_lwsp
@c_ldsp        &i      rd=%r rs1=2 imm=%uimm_ldsp
@c_swsp        &s      rs1=2 rs2=%rs2_5 imm=%uimm_swsp
@c_sdsp        &s      rs1=2 rs2=%rs2_5 imm=%uimm_sdsp
@c_jr          &i      rd=0 rs1=%r imm=0
@c_jalr        &i      rd=1 rs1=%r imm=0
@cr            &r      rd=%r rs1=%r rs2=%rs2_5

# ---- quadrant 0 -----------------------------------------------------------------
{
  c_addi4spn_res  000 00000000 --- 00  !reserved     # nzuimm=0, the all-zero word too
  c_addi4spn      000 ........ ... 00  @ciw        -> addi
}
c_fld           001 ... ... .. ... 00  @cl_d       -> fld
c_lw            010 ... ... .. ... 00  @cl_w       -> lw
c_ld            011 ... ... .. ... 00  @cl_d       -> ld
c_fsd           101 ... ... .. ... 00  @cs_d       -> fsd
c_sw            110 ... ... .. ... 00  @cs_w       -> sw
c_sd            111 ... ... .. ... 00  @cs_d       -> sd

# ---- quadrant 1 -----------------------------------------------------------------
c_addi          000 . ..... ..... 01   @ci         -> addi   # c.nop is rd=0 imm=0
{
  c_addiw_res     001 - 00000 ----- 01  !reserved    # rd=0
  c_addiw         001 . ..... ..... 01  @ci        -> addiw
}
c_li            010 . ..... ..... 01   @ci rs1=0   -> addi
{
  c_lui_res       011 0 ----- 00000 01  !reserved    # nzimm=0, c.addi16sp too
  c_addi16sp      011 . 00010 ..... 01  @c_addi16sp -> addi
  c_lui           011 . ..... ..... 01  @c_lui     -> lui
}
c_srli          100 . 00 ... ..... 01  @c_shift    -> srli
c_srai          100 . 01 ... ..... 01  @c_shift    -> srai
c_andi          100 . 10 ... ..... 01  @c_andi     -> andi
c_sub           100 0 11 ... 00 ... 01 @cs_2       -> sub
c_xor           100 0 11 ... 01 ... 01 @cs_2       -> xor
c_or            100 0 11 ... 10 ... 01 @cs_2       -> or
c_and           100 0 11 ... 11 ... 01 @cs_2       -> and
c_subw          100 1 11 ... 00 ... 01 @cs_2       -> subw
c_addw          100 1 11 ... 01 ... 01 @cs_2       -> addw
c_j             101 ........... 01     @cj         -> jal
c_beqz          110 ... ... ..... 01   @cb_z       -> beq
c_bnez          111 ... ... ..... 01   @cb_z       -> bne

# ---- quadrant 2 -----------------------------------------------------------------
c_slli          000 . ..... ..... 10   @c_shift2   -> slli
c_fldsp         001 . ..... ..... 10   @c_ldsp     -> fld
{
  c_lwsp_res      010 - 00000 ----- 10  !reserved    # rd=0
  c_lwsp          010 . ..... ..... 10  @c_lwsp    -> lw
}
{
  c_ldsp_res      011 - 00000 ----- 10  !reserved    # rd=0
  c_ldsp          011 . ..... ..... 10  @c_ldsp    -> ld
}
{
  c_jr_res        100 0 00000 00000 10  !reserved    # rs1=0
  c_jr            100 0 ..... 00000 10  @c_jr      -> jalr
  c_mv            100 0 ..... ..... 10  @cr rs1=0  -> add
  c_ebreak        100 1 00000 00000 10             -> ebreak
  c_jalr          100 1 ..... 00000 10  @c_jalr    -> jalr
  c_add           100 1 ..... ..... 10  @cr        -> add
}
c_fsdsp         101 ...... ..... 10    @c_sdsp     -> fsd
c_swsp          110 ...... ..... 10    @c_swsp     -> sw
c_sdsp          111 ...... ..... 10    @c_sdsp     -> sd
"""


def build(insn32: DecodeTable) -> DecodeTable:
    """The table, built from PATTERNS (into ``insn32``'s argument sets)."""
    return build_table(PATTERNS, name="riscv/insn16", width=16, functions=FIELD_FUNCTIONS,
                       argsets=insn32.argsets)


INSN16: DecodeTable = pregenerated("riscv/insn16") or build(INSN32)
