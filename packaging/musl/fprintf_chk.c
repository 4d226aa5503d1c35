/* Debian's LLVM libunwind.a (libunwind-14-dev) is built against glibc and calls its
 * _FORTIFY_SOURCE variant __fprintf_chk (only in its debug-log path); musl has no such symbol.
 * This is the whole of it: same arguments after the flag, no extra checking. */
#include <stdarg.h>
#include <stdio.h>

int __fprintf_chk(FILE *stream, int flag, const char *format, ...)
{
    va_list args;
    int written;
    (void)flag;
    va_start(args, format);
    written = vfprintf(stream, format, args);
    va_end(args);
    return written;
}
