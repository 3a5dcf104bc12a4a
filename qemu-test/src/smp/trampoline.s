/*
 * Where the other CPUs (APs) start.
 *
 * A SIPI starts a CPU in 16-bit real mode at physical address vector << 12,
 * which must lie below 1 MiB. The kernel is linked at 1 MiB, so this code is
 * copied to the page AP_TRAMPOLINE before each start (smp/trampoline.rs),
 * and every address it uses is computed relative to that page:
 * (label - ap_trampoline_start + AP_TRAMPOLINE).
 * From there it walks the same road as boot/entry.s, minus what the
 * bootstrap CPU already did (the page tables exist, .bss is zeroed):
 *
 *   1. real mode -> 32-bit protected mode (its own small GDT),
 *   2. PAE, CR3 = the boot page tables (shared by every CPU), EFER.LME and
 *      NXE, paging -> long mode, far jump into a 64-bit code segment,
 *   3. loads the stack the bootstrap CPU mapped for it and calls
 *      ap_entry(cpu_index), both read from the parameter block at the end,
 *      which the bootstrap CPU writes before sending the SIPI.
 *
 * Interrupts stay off: the AP's IDT and GDT are loaded in Rust.
 */

    .section .rodata.ap_trampoline, "a"
    .balign 16
    .global ap_trampoline_start
    .global ap_trampoline_end
    .code16
ap_trampoline_start:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl trampoline_gdt_pointer - ap_trampoline_start + {AP_TRAMPOLINE}
    movl %cr0, %eax
    orl $1, %eax                        /* CR0.PE */
    movl %eax, %cr0
    ljmpl $0x08, $(trampoline_protected - ap_trampoline_start + {AP_TRAMPOLINE})

    .code32
trampoline_protected:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $(1 << 5), %eax                 /* CR4.PAE */
    movl %eax, %cr4
    movl trampoline_cr3 - ap_trampoline_start + {AP_TRAMPOLINE}, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx              /* IA32_EFER */
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax   /* LME | NXE */
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax               /* PG | WP | PE */
    movl %eax, %cr0
    ljmpl $0x18, $(trampoline_long - ap_trampoline_start + {AP_TRAMPOLINE})

    .code64
trampoline_long:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movq trampoline_stack_top - ap_trampoline_start + {AP_TRAMPOLINE}, %rsp
    movq trampoline_cpu_index - ap_trampoline_start + {AP_TRAMPOLINE}, %rdi
    movq trampoline_entry - ap_trampoline_start + {AP_TRAMPOLINE}, %rax
    xorl %ebp, %ebp
    call *%rax
1:  hlt
    jmp 1b

    .balign 8
trampoline_gdt:
    .quad 0                             /* null descriptor */
    .quad 0x00CF9A000000FFFF            /* 0x08: 32-bit code */
    .quad 0x00CF92000000FFFF            /* 0x10: data, writable */
    .quad 0x00AF9A000000FFFF            /* 0x18: 64-bit code */
trampoline_gdt_end:
trampoline_gdt_pointer:
    .word trampoline_gdt_end - trampoline_gdt - 1
    .long (trampoline_gdt - ap_trampoline_start + {AP_TRAMPOLINE})

    /* The parameter block: the layout of `Parameters` in trampoline.rs. */
    .balign 8
    .global ap_trampoline_parameters
ap_trampoline_parameters:
trampoline_cr3:
    .quad 0
trampoline_stack_top:
    .quad 0
trampoline_cpu_index:
    .quad 0
trampoline_entry:
    .quad 0
ap_trampoline_end:
