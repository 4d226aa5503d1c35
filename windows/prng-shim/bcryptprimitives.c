/*
 * bcryptprimitives.dll for wine 8, which lacks ProcessPrng: Rust's std (1.78+) imports
 * bcryptprimitives.dll!ProcessPrng for its random numbers (e.g. HashMap keys), so without it
 * no Rust binary starts. This shim answers it with RtlGenRandom
 * (advapi32!SystemFunction036). Test machinery only: it is installed into the wine prefix used
 * by `make test-windows`, never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE; /* ProcessPrng is documented to always return TRUE */
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance; (void)reason; (void)reserved;
    return TRUE;
}
