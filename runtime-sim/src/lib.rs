//! Instruction-level simulator of the Trainer accelerator with cycle and energy accounting.
