// sharecheck_core: SHA-256d share checking behind AXI4-Stream style interfaces, the shape a
// PCIe DMA engine (Xilinx XDMA in streaming mode) feeds.
//
//   host → card (s_axis): 128-byte work records, back to back, byte 0 in tdata[7:0]:
//     0..7    id (u64, little-endian)
//     8..87   the 80-byte block header, as hashed
//     88..119 share target, 32 bytes big-endian
//     120..127 reserved, 0
//   card → host (m_axis): 64-byte result records, tlast on each record's last beat:
//     0..7    id
//     8       flags: bit 0 hash ≤ share target, bit 1 hash ≤ network target (from nbits)
//     9..15   0
//     16..47  the SHA-256d digest bytes (internal order; block-explorer order reverses them)
//     48..63  0
//
// Three unrolled compressions (header block 1, header block 2, the outer hash) accept one
// header per clock; the stream width DW bounds the rate at DW/1024 headers per clock. The
// whole pipeline stalls while a finished result waits for the result stream.
`default_nettype none

module sharecheck_core #(
    parameter DW = 64  // stream width in bits: 32, 64, 128, 256, 512 or 1024
) (
    input  wire          clk,
    input  wire          rst,
    input  wire [DW-1:0] s_axis_tdata,
    input  wire          s_axis_tvalid,
    output wire          s_axis_tready,
    output wire [DW-1:0] m_axis_tdata,
    output wire          m_axis_tvalid,
    output wire          m_axis_tlast,
    input  wire          m_axis_tready
);
    localparam integer IN_BEATS = 1024 / DW;
    localparam integer OUT_BEATS = 512 / DW;
    localparam [7:0] IN_LAST = IN_BEATS[7:0] - 8'd1;
    localparam [7:0] OUT_LAST = OUT_BEATS[7:0] - 8'd1;
    localparam [255:0] IV = 256'h6a09e667_bb67ae85_3c6ef372_a54ff53a_510e527f_9b05688c_1f83d9ab_5be0cd19;

    // ---- input: assemble one work record ----
    reg [1023:0] rec;
    reg          rec_full;
    reg [7:0]    in_cnt;
    wire         ce;
    wire         take = rec_full & ce;  // the pipeline takes the record this clock
    assign s_axis_tready = ~rec_full;

    always @(posedge clk) begin
        if (rst) begin
            rec_full <= 1'b0;
            in_cnt <= 8'd0;
        end else begin
            if (take) rec_full <= 1'b0;
            if (s_axis_tvalid & s_axis_tready) begin
                rec[in_cnt*DW +: DW] <= s_axis_tdata;
                if (in_cnt == IN_LAST) begin
                    in_cnt <= 8'd0;
                    rec_full <= 1'b1;
                end else begin
                    in_cnt <= in_cnt + 8'd1;
                end
            end
        end
    end

    // Byte i of the record, and big-endian 32-bit words of the header.
    function [7:0] rb;
        input [1023:0] r;
        input integer i;
        rb = r[8*i +: 8];
    endfunction
    wire [639:0] hdr_be;  // header as 20 big-endian words, word 0 in [639:608]
    wire [255:0] share_target;
    genvar j;
    generate
        for (j = 0; j < 80; j = j + 1) begin : hdr_bytes
            assign hdr_be[639 - 8*j -: 8] = rec[8*(8+j) +: 8];
        end
        for (j = 0; j < 32; j = j + 1) begin : tgt_bytes
            assign share_target[255 - 8*j -: 8] = rec[8*(88+j) +: 8];
        end
    endgenerate
    wire [63:0] rec_id = rec[63:0];
    wire [31:0] rec_nbits = {rb(rec, 83), rb(rec, 82), rb(rec, 81), rb(rec, 80)};

    // ---- three compressions ----
    localparam M1 = 64 + 256 + 128 + 32;
    localparam M2 = 64 + 256 + 32;
    wire [255:0] s1, s2, s3;
    wire         v1, v2, v3;
    wire [M1-1:0] m1;
    wire [M2-1:0] m2, m3;

    sha256_pipe #(.META_W(M1)) block1 (
        .clk(clk), .rst(rst), .ce(ce), .in_valid(take), .in_state(IV),
        .in_block(hdr_be[639:128]),
        .in_meta({rec_id, share_target, hdr_be[127:0], rec_nbits}),
        .out_valid(v1), .out_state(s1), .out_meta(m1));

    sha256_pipe #(.META_W(M2)) block2 (
        .clk(clk), .rst(rst), .ce(ce), .in_valid(v1), .in_state(s1),
        .in_block({m1[159:32], 32'h80000000, 320'b0, 32'd640}),
        .in_meta({m1[M1-1 -: 320], m1[31:0]}),
        .out_valid(v2), .out_state(s2), .out_meta(m2));

    sha256_pipe #(.META_W(M2)) outer (
        .clk(clk), .rst(rst), .ce(ce), .in_valid(v2), .in_state(IV),
        .in_block({s2, 32'h80000000, 192'b0, 32'd256}),
        .in_meta(m2),
        .out_valid(v3), .out_state(s3), .out_meta(m3));

    // ---- compare ----
    wire [63:0]  id3 = m3[M2-1 -: 64];
    wire [255:0] tgt3 = m3[M2-65 -: 256];
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0]  nbits3 = m3[31:0];  // bit 23 (sign) was checked by the host
    /* verilator lint_on UNUSEDSIGNAL */
    // The hash as Bitcoin compares it: the digest read as a little-endian integer.
    wire [255:0] hash_le;
    generate
        for (j = 0; j < 32; j = j + 1) begin : rev
            assign hash_le[8*j +: 8] = s3[255 - 8*j -: 8];
        end
    endgenerate
    // Network target from the compact nbits (the host has rejected negative or overflowing
    // values; an exponent above 34 gives 0 here, never a false block).
    wire [7:0]   nexp = nbits3[31:24];
    wire [255:0] nmant = {233'b0, nbits3[22:0]};
    wire [255:0] net_target = (nexp <= 8'd3) ? (nmant >> (8 * (8'd3 - nexp)))
                            : (nexp <= 8'd34) ? (nmant << (8 * (nexp - 8'd3))) : 256'b0;

    reg         c_valid;
    reg [383:0] c_res;
    always @(posedge clk) begin
        if (rst) begin
            c_valid <= 1'b0;
        end else if (ce) begin
            c_valid <= v3;
            c_res <= {s3, 62'b0, hash_le <= net_target, hash_le <= tgt3, id3};
        end
    end
    // Digest bytes must sit at record bytes 16..47 with byte 0 first: reverse the words'
    // byte order into the little-endian record.
    wire [511:0] c_rec;
    assign c_rec[127:0] = c_res[127:0];
    generate
        for (j = 0; j < 32; j = j + 1) begin : digest_bytes
            assign c_rec[8*(16+j) +: 8] = c_res[383 - 8*j -: 8];
        end
    endgenerate
    assign c_rec[511:384] = 128'b0;

    // ---- output: serialise one result record ----
    reg [511:0] out_rec;
    reg         out_full;
    reg [7:0]   out_cnt;
    assign ce = ~(c_valid & out_full);
    assign m_axis_tvalid = out_full;
    assign m_axis_tdata = out_rec[out_cnt*DW +: DW];
    assign m_axis_tlast = out_cnt == OUT_LAST;

    always @(posedge clk) begin
        if (rst) begin
            out_full <= 1'b0;
            out_cnt <= 8'd0;
        end else begin
            if (out_full & m_axis_tready) begin
                if (out_cnt == OUT_LAST) begin
                    out_cnt <= 8'd0;
                    out_full <= 1'b0;
                end else begin
                    out_cnt <= out_cnt + 8'd1;
                end
            end
            if (ce & c_valid) begin
                out_rec <= c_rec;
                out_full <= 1'b1;
            end
        end
    end
endmodule

`default_nettype wire
