/* A minimal start-up for a Cortex-M: the vector table, the reset handler (copy .data,
 * zero .bss, switch the FPU on, open the semihosting handles) and a trap for every
 * fault.  The memory comes from the linker script (cortex_m4.ld). */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__;
extern uint32_t __stack_top__;
extern int main(void);
extern void initialise_monitor_handles(void);      /* newlib's librdimon */

void Reset_Handler(void);
void Fault_Handler(void);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)   /* coprocessor access control */

__attribute__((section(".vectors"), used))
static void (*const vectors[16])(void) = {
    (void (*)(void))&__stack_top__,     /* the initial stack pointer */
    Reset_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,  /* NMI.. */
    0, 0, 0, 0,
    Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,    /* SVC.. SysTick */
};

void Reset_Handler(void)
{
    uint32_t *src = &__data_load__, *dst = &__data_start__;
    while (dst < &__data_end__) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start__; dst < &__bss_end__; dst++) {
        *dst = 0;
    }
#if defined(__ARM_FP)
    CPACR |= 0xFu << 20;                /* full access to CP10 and CP11: the FPU */
    __asm__ volatile("dsb\n\tisb");
#endif
    initialise_monitor_handles();
    exit(main());
}

void Fault_Handler(void)
{
    exit(3);
}

/* newlib's exit runs the destructors through _fini (crti.o's, which -nostartfiles drops). */
void _init(void);
void _fini(void);

void _init(void)
{
}

void _fini(void)
{
}
