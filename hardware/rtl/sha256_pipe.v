// One SHA-256 compression as a fully unrolled pipeline: one round per stage, 64 stages plus
// the feed-forward addition, so it accepts a new block every clock and answers 65 clocks
// later. Each stage carries the working state, the 16-word message window (the schedule is
// computed on the fly one word per stage, as in the classic open FPGA miners), the chaining
// value for the feed-forward, and META_W bits of caller data that travel in step.
//
// `ce` stalls every register at once (backpressure from the result stream).
`default_nettype none

module sha256_pipe #(
    parameter META_W = 1,
    // Round stages built. 64 is SHA-256; fewer exist only for timing and area studies of a
    // small slice of the pipeline (hardware/synth), whose output is not a hash.
    parameter ROUNDS = 64
) (
    input  wire              clk,
    input  wire              rst,
    input  wire              ce,
    input  wire              in_valid,
    input  wire [255:0]      in_state,   // chaining value, word a in [255:224]
    input  wire [511:0]      in_block,   // message words, W0 in [511:480]
    input  wire [META_W-1:0] in_meta,
    output reg               out_valid,
    output reg  [255:0]      out_state,  // in_state + compress(in_state, in_block)
    output reg  [META_W-1:0] out_meta
);
    function [31:0] k;
        input [5:0] t;
        case (t)
            6'd0: k = 32'h428a2f98; 6'd1: k = 32'h71374491; 6'd2: k = 32'hb5c0fbcf; 6'd3: k = 32'he9b5dba5;
            6'd4: k = 32'h3956c25b; 6'd5: k = 32'h59f111f1; 6'd6: k = 32'h923f82a4; 6'd7: k = 32'hab1c5ed5;
            6'd8: k = 32'hd807aa98; 6'd9: k = 32'h12835b01; 6'd10: k = 32'h243185be; 6'd11: k = 32'h550c7dc3;
            6'd12: k = 32'h72be5d74; 6'd13: k = 32'h80deb1fe; 6'd14: k = 32'h9bdc06a7; 6'd15: k = 32'hc19bf174;
            6'd16: k = 32'he49b69c1; 6'd17: k = 32'hefbe4786; 6'd18: k = 32'h0fc19dc6; 6'd19: k = 32'h240ca1cc;
            6'd20: k = 32'h2de92c6f; 6'd21: k = 32'h4a7484aa; 6'd22: k = 32'h5cb0a9dc; 6'd23: k = 32'h76f988da;
            6'd24: k = 32'h983e5152; 6'd25: k = 32'ha831c66d; 6'd26: k = 32'hb00327c8; 6'd27: k = 32'hbf597fc7;
            6'd28: k = 32'hc6e00bf3; 6'd29: k = 32'hd5a79147; 6'd30: k = 32'h06ca6351; 6'd31: k = 32'h14292967;
            6'd32: k = 32'h27b70a85; 6'd33: k = 32'h2e1b2138; 6'd34: k = 32'h4d2c6dfc; 6'd35: k = 32'h53380d13;
            6'd36: k = 32'h650a7354; 6'd37: k = 32'h766a0abb; 6'd38: k = 32'h81c2c92e; 6'd39: k = 32'h92722c85;
            6'd40: k = 32'ha2bfe8a1; 6'd41: k = 32'ha81a664b; 6'd42: k = 32'hc24b8b70; 6'd43: k = 32'hc76c51a3;
            6'd44: k = 32'hd192e819; 6'd45: k = 32'hd6990624; 6'd46: k = 32'hf40e3585; 6'd47: k = 32'h106aa070;
            6'd48: k = 32'h19a4c116; 6'd49: k = 32'h1e376c08; 6'd50: k = 32'h2748774c; 6'd51: k = 32'h34b0bcb5;
            6'd52: k = 32'h391c0cb3; 6'd53: k = 32'h4ed8aa4a; 6'd54: k = 32'h5b9cca4f; 6'd55: k = 32'h682e6ff3;
            6'd56: k = 32'h748f82ee; 6'd57: k = 32'h78a5636f; 6'd58: k = 32'h84c87814; 6'd59: k = 32'h8cc70208;
            6'd60: k = 32'h90befffa; 6'd61: k = 32'ha4506ceb; 6'd62: k = 32'hbef9a3f7; default: k = 32'hc67178f2;
        endcase
    endfunction

    // Stage buses: slice 0 is the pipeline input, slice t+1 the registered output of round t
    // (flat vectors rather than arrays, which every Verilog tool accepts).
    localparam SW = 256 + 512 + 256 + META_W + 1;
    wire [SW*(ROUNDS+1)-1:0] bus;
    assign bus[SW-1:0] = {in_state, in_block, in_state, in_meta, in_valid};

    genvar t;
    generate
        for (t = 0; t < ROUNDS; t = t + 1) begin : round
            wire [SW-1:0] cur = bus[SW*t +: SW];
            wire [255:0] st = cur[SW-1 -: 256];
            wire [511:0] win = cur[SW-257 -: 512];
            wire [255:0] init = cur[SW-769 -: 256];
            wire [META_W-1:0] meta = cur[META_W:1];
            wire vld = cur[0];
            wire [31:0] a = st[255:224], b = st[223:192], c = st[191:160], d = st[159:128];
            wire [31:0] e = st[127:96], f = st[95:64], g = st[63:32], h = st[31:0];
            wire [31:0] w0 = win[511:480];
            wire [31:0] w1 = win[479:448];
            wire [31:0] w9 = win[223:192];
            wire [31:0] w14 = win[63:32];
            wire [31:0] s1 = {e[5:0], e[31:6]} ^ {e[10:0], e[31:11]} ^ {e[24:0], e[31:25]};
            wire [31:0] ch = (e & f) ^ (~e & g);
            wire [31:0] t1 = h + s1 + ch + k(t[5:0]) + w0;
            wire [31:0] s0 = {a[1:0], a[31:2]} ^ {a[12:0], a[31:13]} ^ {a[21:0], a[31:22]};
            wire [31:0] maj = (a & b) ^ (a & c) ^ (b & c);
            wire [31:0] t2 = s0 + maj;
            // Next schedule word W[t+16] = σ1(W[t+14]) + W[t+9] + σ0(W[t+1]) + W[t].
            wire [31:0] ss0 = {w1[6:0], w1[31:7]} ^ {w1[17:0], w1[31:18]} ^ (w1 >> 3);
            wire [31:0] ss1 = {w14[16:0], w14[31:17]} ^ {w14[18:0], w14[31:19]} ^ (w14 >> 10);
            wire [31:0] wn = ss1 + w9 + ss0 + w0;
            reg [SW-1:1] q;
            reg q_vld;
            always @(posedge clk) begin
                if (rst) begin
                    q_vld <= 1'b0;
                end else if (ce) begin
                    q_vld <= vld;
                    q <= {t1 + t2, a, b, c, d + t1, e, f, g, win[479:0], wn, init, meta};
                end
            end
            assign bus[SW*(t+1) +: SW] = {q, q_vld};
        end
    endgenerate

    // Feed-forward: add the chaining value word by word.
    /* verilator lint_off UNUSEDSIGNAL */
    wire [SW-1:0] last = bus[SW*ROUNDS +: SW];  // the message window is not needed after round 63
    /* verilator lint_on UNUSEDSIGNAL */
    wire [255:0] last_st = last[SW-1 -: 256];
    wire [255:0] last_init = last[SW-769 -: 256];
    integer i;
    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
        end else if (ce) begin
            out_valid <= last[0];
            out_meta <= last[META_W:1];
            for (i = 0; i < 8; i = i + 1)
                out_state[i*32 +: 32] <= last_st[i*32 +: 32] + last_init[i*32 +: 32];
        end
    end
endmodule

`default_nettype wire
