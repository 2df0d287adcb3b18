// sharecheck-fpga-sim: the Verilator model of sharecheck_core behind the same two byte
// streams that the Xilinx XDMA driver exposes (a host-to-card and a card-to-host character
// device), here as two named pipes. The host backend cannot tell it from a card, except by
// speed.
//
// usage: sharecheck-fpga-sim H2C_FIFO C2H_FIFO
// Serves one host connection after another; each connection starts from a reset core.
#include "Vsharecheck_core.h"
#include "verilated.h"

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <vector>

static const int BEAT = 8;  // DW = 64 bits
static const int IN_BEATS = 128 / BEAT;

static void tick(Vsharecheck_core* top) {
    top->clk = 0;
    top->eval();
    top->clk = 1;
    top->eval();
}

static void reset(Vsharecheck_core* top) {
    top->rst = 1;
    top->s_axis_tvalid = 0;
    top->m_axis_tready = 0;
    for (int i = 0; i < 4; i++) tick(top);
    top->rst = 0;
}

static bool write_all(int fd, const uint8_t* p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s H2C_FIFO C2H_FIFO\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    Verilated::commandArgs(argc, argv);
    Vsharecheck_core* top = new Vsharecheck_core;
    std::vector<uint8_t> buf(1 << 16);
    for (;;) {
        int in = open(argv[1], O_RDONLY);
        if (in < 0) {
            perror("open h2c");
            return 1;
        }
        int out = open(argv[2], O_WRONLY);
        if (out < 0) {
            perror("open c2h");
            return 1;
        }
        reset(top);
        std::vector<uint8_t> inbuf, outbuf;
        size_t inpos = 0;
        uint64_t beats_in = 0, recs_out = 0;
        bool eof = false, broken = false;
        for (;;) {
            uint64_t recs_in = beats_in / IN_BEATS;
            bool busy = recs_in != recs_out;
            bool have_beat = inbuf.size() - inpos >= (size_t)BEAT;
            if (eof && !busy && !have_beat) break;
            if (!eof) {
                struct pollfd p = {in, POLLIN, 0};
                int r = poll(&p, 1, (busy || have_beat) ? 0 : -1);
                if (r > 0) {
                    ssize_t n = read(in, buf.data(), buf.size());
                    if (n == 0) {
                        eof = true;
                    } else if (n > 0) {
                        if (inpos > (1 << 20)) {
                            inbuf.erase(inbuf.begin(), inbuf.begin() + (long)inpos);
                            inpos = 0;
                        }
                        inbuf.insert(inbuf.end(), buf.begin(), buf.begin() + n);
                    } else if (errno != EINTR) {
                        eof = true;
                    }
                }
            }
            // A burst of clocks.
            for (int c = 0; c < 512; c++) {
                bool valid = inbuf.size() - inpos >= (size_t)BEAT;
                uint64_t word = 0;
                if (valid) memcpy(&word, &inbuf[inpos], BEAT);  // little-endian host
                top->s_axis_tvalid = valid;
                top->s_axis_tdata = word;
                top->m_axis_tready = 1;
                top->clk = 0;
                top->eval();
                bool in_fire = valid && top->s_axis_tready;
                bool out_fire = top->m_axis_tvalid;
                uint64_t odata = top->m_axis_tdata;
                bool olast = top->m_axis_tlast;
                top->clk = 1;
                top->eval();
                if (in_fire) {
                    inpos += BEAT;
                    beats_in++;
                }
                if (out_fire) {
                    uint8_t b[BEAT];
                    memcpy(b, &odata, BEAT);
                    outbuf.insert(outbuf.end(), b, b + BEAT);
                    if (olast) recs_out++;
                }
                if (!valid && beats_in / IN_BEATS == recs_out) break;
            }
            if (!outbuf.empty()) {
                if (!write_all(out, outbuf.data(), outbuf.size())) {
                    broken = true;
                    break;
                }
                outbuf.clear();
            }
        }
        (void)broken;
        close(in);
        close(out);
    }
}
