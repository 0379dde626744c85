# Turns a compiled BPF object (IN, built from SRC) into a C array named SYM (with SYM_len)
# in OUT, which src/lib loads with bpf_object__open_mem: the program travels inside the
# binary, nothing to install.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT}
     "/* Generated from ${SRC} by src/bpf/embed.cmake: do not edit. */\n"
     "#include <stddef.h>\n"
     "extern const unsigned char ${SYM}[];\n"
     "extern const size_t ${SYM}_len;\n"
     "const unsigned char ${SYM}[] = {\n${bytes}\n};\n"
     "const size_t ${SYM}_len = ${len};\n")
