// Every form of operator new and delete, run with libft_malloc.so
// preloaded (tests/cxx.rs). Modes:
//   all           every form is the library's; blocks usable and aligned; a
//                 failed new runs the new-handler loop, throws bad_alloc,
//                 nothrow forms return NULL; prints "ok".
//   double_delete deletes one block twice (the library must abort).
//   wrong_size    a sized delete with a size the block cannot have (aborts
//                 under FT_MALLOC_SIZED_CHECK, else frees as delete would).
#include <dlfcn.h>
#include <malloc.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>

#define CHECK(cond)                                                    \
    do {                                                               \
        if (!(cond)) {                                                 \
            std::printf("FAILED line %d: %s\n", __LINE__, #cond);      \
            std::exit(1);                                              \
        }                                                              \
    } while (0)

// Too big for any heap, below PTRDIFF_MAX so it reaches the allocator.
static const std::size_t HUGE_SIZE = std::size_t(1) << 62;

static const char *const SYMBOLS[] = {
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t",
    "_ZdaPvRKSt9nothrow_t", "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

static void every_symbol_is_the_librarys() {
    for (const char *name : SYMBOLS) {
        void *f = dlsym(RTLD_DEFAULT, name);
        Dl_info info;
        CHECK(f != nullptr && dladdr(f, &info) != 0);
        if (std::strstr(info.dli_fname, "libft_malloc") == nullptr) {
            std::printf("FAILED: %s is from %s\n", name, info.dli_fname);
            std::exit(1);
        }
    }
}

// The block is usable for `size` bytes (as the library sees it too).
static void use(void *p, std::size_t size, std::size_t align) {
    CHECK(p != nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % align == 0);
    CHECK(malloc_usable_size(p) >= size);
    std::memset(p, 0x5a, size);
}

struct alignas(256) Over {
    char bytes[300];
};

static void every_form_allocates_and_frees() {
    for (std::size_t size : {std::size_t(0), std::size_t(1), std::size_t(24), std::size_t(1000),
                             std::size_t(70000), std::size_t(1) << 20}) {
        void *p = ::operator new(size);
        use(p, size, 16);
        ::operator delete(p);
        p = ::operator new[](size);
        use(p, size, 16);
        ::operator delete[](p);
        p = ::operator new(size);
        use(p, size, 16);
        ::operator delete(p, size);
        p = ::operator new[](size);
        use(p, size, 16);
        ::operator delete[](p, size);
        p = ::operator new(size, std::nothrow);
        use(p, size, 16);
        ::operator delete(p, std::nothrow);
        p = ::operator new[](size, std::nothrow);
        use(p, size, 16);
        ::operator delete[](p, std::nothrow);
        for (std::size_t align : {std::size_t(32), std::size_t(4096), std::size_t(1) << 16}) {
            std::align_val_t a{align};
            p = ::operator new(size, a);
            use(p, size, align);
            ::operator delete(p, a);
            p = ::operator new[](size, a);
            use(p, size, align);
            ::operator delete[](p, a);
            p = ::operator new(size, a);
            use(p, size, align);
            ::operator delete(p, size, a);
            p = ::operator new[](size, a);
            use(p, size, align);
            ::operator delete[](p, size, a);
            p = ::operator new(size, a, std::nothrow);
            use(p, size, align);
            ::operator delete(p, a, std::nothrow);
            p = ::operator new[](size, a, std::nothrow);
            use(p, size, align);
            ::operator delete[](p, a, std::nothrow);
        }
    }
    // What the compiler emits for new-expressions (sized and aligned
    // deletes included with -fsized-deallocation and C++17).
    int *i = new int(7);
    delete i;
    Over *o = new Over;
    use(o, sizeof(Over), alignof(Over));
    delete o;
    Over *os = new Over[3];
    use(os, 3 * sizeof(Over), alignof(Over));
    delete[] os;
}

static int handler_calls;

// Gives up on the second call: uninstalls itself, so the loop throws.
static void handler_that_gives_up() {
    if (++handler_calls == 2) {
        std::set_new_handler(nullptr);
    }
}

static void handler_that_throws() {
    ++handler_calls;
    throw std::bad_alloc();
}

// Throwing forms: bad_alloc, after the handler loop when a handler is set.
template <typename New>
static void throws_bad_alloc(New attempt) {
    for (int with_handler = 0; with_handler < 2; ++with_handler) {
        handler_calls = 0;
        std::set_new_handler(with_handler ? handler_that_gives_up : nullptr);
        bool caught = false;
        try {
            attempt();
        } catch (const std::bad_alloc &) {
            caught = true;
        }
        CHECK(caught);
        CHECK(handler_calls == (with_handler ? 2 : 0));
    }
    std::set_new_handler(nullptr);
}

// nothrow forms: NULL, also when the handler throws.
template <typename New>
static void returns_null(New attempt) {
    for (int with_handler = 0; with_handler < 2; ++with_handler) {
        handler_calls = 0;
        std::set_new_handler(with_handler ? handler_that_throws : nullptr);
        CHECK(attempt() == nullptr);
        CHECK(handler_calls == with_handler);
    }
    std::set_new_handler(nullptr);
}

static void failures_follow_the_standard() {
    std::align_val_t a{64};
    throws_bad_alloc([] { return ::operator new(HUGE_SIZE); });
    throws_bad_alloc([] { return ::operator new[](HUGE_SIZE); });
    throws_bad_alloc([a] { return ::operator new(HUGE_SIZE, a); });
    throws_bad_alloc([a] { return ::operator new[](HUGE_SIZE, a); });
    returns_null([] { return ::operator new(HUGE_SIZE, std::nothrow); });
    returns_null([] { return ::operator new[](HUGE_SIZE, std::nothrow); });
    returns_null([a] { return ::operator new(HUGE_SIZE, a, std::nothrow); });
    returns_null([a] { return ::operator new[](HUGE_SIZE, a, std::nothrow); });
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    if (std::strcmp(mode, "all") == 0) {
        every_symbol_is_the_librarys();
        every_form_allocates_and_frees();
        failures_follow_the_standard();
        std::puts("ok");
    } else if (std::strcmp(mode, "double_delete") == 0) {
        int *p = new int(1);
        std::puts("misuse");
        std::fflush(stdout);
        delete p;
        delete p;
        std::puts("survived");
    } else if (std::strcmp(mode, "wrong_size") == 0) {
        void *p = ::operator new(40);
        std::puts("misuse");
        std::fflush(stdout);
        ::operator delete(p, 4000);
        std::puts("survived");
    }
    return 0;
}
