//! The Trainer instruction set: instruction table, encoder/decoder, assembler/disassembler, `.tbin` container.
