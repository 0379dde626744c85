# Turns the compiled BPF object (IN) into a C array (OUT) that src/lib/sockmap.c loads with
# bpf_object__open_mem: the program travels inside the binary, nothing to install.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT}
     "/* Generated from src/bpf/relay.bpf.c by src/bpf/embed.cmake: do not edit. */\n"
     "#include <stddef.h>\n"
     "extern const unsigned char mux443_relay_bpf[];\n"
     "extern const size_t mux443_relay_bpf_len;\n"
     "const unsigned char mux443_relay_bpf[] = {\n${bytes}\n};\n"
     "const size_t mux443_relay_bpf_len = ${len};\n")
