; halt.asm: a -bios image whose guest does nothing at all: interrupts
; off, halted for good.  A COLO secondary running it never writes its own
; RAM, so its memory can be compared with ours byte for byte.
;
; Build: nasm -f bin -o halt.bios halt.asm  (64 KiB image)

            bits 16
            org 0
start:
            cli
.stop:
            hlt
            jmp short .stop

            times 0xfff0 - ($ - $$) db 0xff
reset:      jmp 0xf000:start
            times 0x10000 - ($ - $$) db 0xff
