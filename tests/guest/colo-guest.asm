; colo-guest.asm: a tiny -bios guest that keeps dirtying memory in a way a
; test can check.
;
; It runs from the reset vector, copies itself into RAM at CODE_BASE (under
; KVM without a read-only memory slot the firmware ROM is emulated MMIO, and
; code there cannot get through the switch to protected mode), switches to
; 32-bit protected mode with flat segments and then loops forever:
;
;   C = C + 1                     (the counter, also at COUNTER, 0x500000)
;   page = PAGES_BASE + (C mod NPAGES) * 4096
;   page[0..15]  = "COLO", page index, C, C xor 0xa5a5a5a5
;   page[16 + 4 * ((C / NPAGES) mod 1020)] = C   (a moving word, so
;                                                 XBZRLE has work to do)
;
; NPAGES can be set with nasm -DNPAGES=N (bench/ fills 1 GiB that way).
; With -DPAGES_PER_TICK=K the guest paces itself by the PIT (channel 0 as
; a rate generator, reload PIT_RELOAD, polled): K pages per tick, so a
; dirty rate that does not depend on how fast TCG runs (bench/).
;
; Every 65536 iterations it prints "colo-guest C=XXXXXXXX" on COM1.
; Invariants a test can check on any consistent snapshot of guest RAM:
; every page whose first word is "COLO" has the right index, a matching
; xor word, and a counter not above the one at COUNTER.
;
; (The counter used to live at 0x500; QEMU 7.2 under TCG loses the dirty
; bits of guest page 0 during migration, so it moved out of the way.)
;
; Build: nasm -f bin -o colo-guest.bios colo-guest.asm  (64 KiB image)

            bits 16
            cpu 686

PAGES_BASE  equ 0x00100000
%ifndef NPAGES
NPAGES      equ 1024                ; 4 MiB of guest RAM kept dirty
%endif
COUNTER     equ PAGES_BASE + NPAGES * 4096  ; own page, above 1 MiB
COM1        equ 0x3f8
%ifndef PIT_RELOAD
PIT_RELOAD  equ 1193                ; 1.193182 MHz / 1193: about 1 kHz
%endif
%ifndef REPORT_MASK
REPORT_MASK equ 0xffff              ; print C when (C & mask) == 0
%endif
LAST_PIT    equ 0x6000              ; last PIT count read (pacing)
ROM_BASE    equ 0xf0000             ; where the 64 KiB image sits below 1 MiB
CODE_BASE   equ 0x10000             ; where it runs from

            org 0

start:
            cli
            cld
            xor ax, ax
            mov ss, ax
            mov sp, 0x7000
            ; A20 on (QEMU starts with it on; be explicit)
            in al, 0x92
            or al, 2
            and al, 0xfe
            out 0x92, al

            ; run from RAM
            mov ax, ROM_BASE >> 4
            mov ds, ax
            mov ax, CODE_BASE >> 4
            mov es, ax
            xor si, si
            xor di, di
            mov cx, 0x8000
            rep movsw
            jmp (CODE_BASE >> 4):in_ram
in_ram:
            ; 32-bit protected mode, flat code and data
            o32 lgdt [cs:gdt_desc]
            mov eax, cr0
            or al, 1
            mov cr0, eax
            jmp dword 0x10:(CODE_BASE + pm32)

            bits 32
pm32:
            mov ax, 0x08
            mov ds, ax
            mov es, ax
            mov ss, ax
            mov esp, 0x7000

            mov esi, CODE_BASE + banner
            call puts

            mov ecx, [COUNTER]          ; 0 after reset
%ifdef PAGES_PER_TICK
            mov al, 0x34                ; channel 0, lo/hi byte, mode 2
            out 0x43, al
            mov al, PIT_RELOAD & 0xff
            out 0x40, al
            mov al, PIT_RELOAD >> 8
            out 0x40, al
            call pit_read
            mov [LAST_PIT], ax
            xor ebp, ebp
%endif

main_loop:
%ifdef PAGES_PER_TICK
            dec ebp
            jns .paced                  ; pages left in this tick
.wait:
            call pit_read
            cmp ax, [LAST_PIT]
            mov [LAST_PIT], ax
            jbe .wait                   ; still counting down: same tick
            mov ebp, PAGES_PER_TICK - 1
.paced:
%endif
            inc ecx
            mov [COUNTER], ecx

            mov eax, ecx
            xor edx, edx
            mov ebx, NPAGES
            div ebx                     ; eax = C / NPAGES, edx = C mod NPAGES
            mov esi, eax                ; the pass number
            mov eax, edx
            shl eax, 12
            add eax, PAGES_BASE
            mov edi, eax                ; page address

            mov dword [edi], 0x4f4c4f43 ; "COLO"
            mov [edi + 4], edx
            mov [edi + 8], ecx
            mov eax, ecx
            xor eax, 0xa5a5a5a5
            mov [edi + 12], eax

            mov eax, esi
            xor edx, edx
            mov ebx, 1020
            div ebx                     ; edx = pass mod 1020
            mov [edi + 16 + edx * 4], ecx

            test ecx, REPORT_MASK
            jnz main_loop
            call report
            jmp main_loop

%ifdef PAGES_PER_TICK
; ax = PIT channel 0's current count
pit_read:
            mov al, 0x00                ; latch channel 0
            out 0x43, al
            in al, 0x40
            mov ah, al
            in al, 0x40
            xchg al, ah
            ret
%endif

; print "colo-guest C=XXXXXXXX\r\n" for ecx
report:
            push ecx
            mov esi, CODE_BASE + tick
            call puts
            mov ebx, ecx
            mov ecx, 8
.digit:
            rol ebx, 4
            mov al, bl
            and al, 0x0f
            add al, '0'
            cmp al, '9'
            jbe .out
            add al, 'a' - '0' - 10
.out:
            call putc
            loop .digit
            mov al, 13
            call putc
            mov al, 10
            call putc
            pop ecx
            ret

; print the NUL-terminated string at esi
puts:
            mov al, [esi]
            test al, al
            jz .done
            call putc
            inc esi
            jmp puts
.done:
            ret

putc:
            push dx
            mov dx, COM1
            out dx, al
            pop dx
            ret

banner:     db "colo-guest start", 13, 10, 0
tick:       db "colo-guest C=", 0

            align 8
gdt:        dq 0
            dq 0x00cf92000000ffff       ; 0x08: flat data, 4 GiB, writable
            dq 0x00cf9a000000ffff       ; 0x10: flat code, 4 GiB, 32-bit
gdt_end:
gdt_desc:   dw gdt_end - gdt - 1
            dd CODE_BASE + gdt

            times 0xfff0 - ($ - $$) db 0xff
            bits 16
reset:      jmp 0xf000:start
            times 0x10000 - ($ - $$) db 0xff
