// C++ object churn: each thread keeps a table of polymorphic objects of
// eight sizes (24 B .. 1 KiB) and replaces a random one per step with a
// `new` of a random type; `delete` through the base class calls the sized
// `operator delete` with the dynamic type's size (g++'s default from
// C++14). Threads never share an object. The kind of load larson-sized and
// most C++ programs put on `operator new`/`delete`.
//
//   cxx_objects THREADS STEPS_PER_THREAD
#include <pthread.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>

struct Base {
    virtual ~Base() {}
    virtual unsigned touch() const = 0;
};

template <unsigned N>
struct Object : Base {
    unsigned char bytes[N];
    Object() { std::memset(bytes, static_cast<int>(N), sizeof bytes); }
    unsigned touch() const override { return bytes[0] + bytes[N - 1]; }
};

static const unsigned SLOTS = 2000;
static unsigned long steps;

static Base *make(unsigned kind) {
    switch (kind & 7) {
    case 0: return new Object<16>;
    case 1: return new Object<40>;
    case 2: return new Object<56>;
    case 3: return new Object<100>;
    case 4: return new Object<200>;
    case 5: return new Object<300>;
    case 6: return new Object<500>;
    default: return new Object<1000>;
    }
}

static void *churn(void *arg) {
    unsigned seed = static_cast<unsigned>(reinterpret_cast<unsigned long>(arg)) * 2654435761u + 1;
    Base **table = new Base *[SLOTS]();
    unsigned long sum = 0;
    for (unsigned long i = 0; i < steps; ++i) {
        seed = seed * 1103515245u + 12345u;
        unsigned slot = (seed >> 8) % SLOTS;
        if (table[slot] != nullptr) {
            sum += table[slot]->touch();
            delete table[slot];
        }
        table[slot] = make(seed >> 24);
    }
    for (unsigned i = 0; i < SLOTS; ++i) {
        delete table[i];
    }
    delete[] table;
    return reinterpret_cast<void *>(sum);
}

int main(int argc, char **argv) {
    unsigned threads = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 2;
    steps = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1000000;
    pthread_t ids[64];
    if (threads < 1 || threads > 64) {
        return 2;
    }
    for (unsigned long t = 0; t < threads; ++t) {
        pthread_create(&ids[t], nullptr, churn, reinterpret_cast<void *>(t + 1));
    }
    for (unsigned t = 0; t < threads; ++t) {
        pthread_join(ids[t], nullptr);
    }
    std::printf("done\n");
    return 0;
}
