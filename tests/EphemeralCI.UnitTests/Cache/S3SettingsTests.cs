using Xunit;
using EphemeralCI.Cache.Storage;

namespace EphemeralCI.UnitTests.Cache;

public class S3SettingsTests
{
    [Fact]
    public void Parses_the_minimal_form_with_defaults()
    {
        var s = S3Settings.Parse("Endpoint=http://127.0.0.1:59000;AccessKey=S3RVER;SecretKey=S3RVER");

        Assert.Equal(new Uri("http://127.0.0.1:59000"), s.Endpoint);
        Assert.Equal("S3RVER", s.AccessKey);
        Assert.Equal("S3RVER", s.SecretKey);
        Assert.Equal(S3Settings.DefaultBucket, s.Bucket);
        Assert.Equal(S3Settings.DefaultRegion, s.Region);
        Assert.False(s.UseSsl);
    }

    [Fact]
    public void Parses_every_key_in_any_case_and_order_and_secrets_with_base64_characters()
    {
        var s = S3Settings.Parse("region=eu-west-1; BUCKET=my.cache-1 ;secretkey=a+b/c==;accesskey=AK;endpoint=https://minio.example:9443");

        Assert.Equal("minio.example", s.Endpoint.Host);
        Assert.Equal(9443, s.Endpoint.Port);
        Assert.True(s.UseSsl);
        Assert.Equal("AK", s.AccessKey);
        Assert.Equal("a+b/c==", s.SecretKey);
        Assert.Equal("my.cache-1", s.Bucket);
        Assert.Equal("eu-west-1", s.Region);
    }

    [Theory]
    [InlineData(null, "is missing")]
    [InlineData("  ", "is missing")]
    [InlineData("AccessKey=a;SecretKey=b", "lacks 'Endpoint='")]
    [InlineData("Endpoint=http://h:1;SecretKey=b", "lacks 'AccessKey='")]
    [InlineData("Endpoint=http://h:1;AccessKey=a;SecretKey=", "lacks 'SecretKey='")]
    [InlineData("Endpoint=h:1;AccessKey=a;SecretKey=b", "invalid 'Endpoint'")]
    [InlineData("Endpoint=ftp://h:1;AccessKey=a;SecretKey=b", "invalid 'Endpoint'")]
    [InlineData("Endpoint=http://h:1/some/path;AccessKey=a;SecretKey=b", "invalid 'Endpoint'")]
    [InlineData("Endpoint=http://h:1;AccessKey=a;SecretKey=b;Bucket=Upper_Case", "invalid 'Bucket'")]
    [InlineData("Endpoint=http://h:1;AccessKey=a;SecretKey=b;Buckett=x", "unknown key 'Buckett'")]
    public void Rejects_bad_settings_naming_the_setting_and_key(string? value, string reason)
    {
        var e = Assert.Throws<InvalidOperationException>(() => S3Settings.Parse(value, "ConnectionStrings:minio"));

        Assert.Contains("ConnectionStrings:minio", e.Message);
        Assert.Contains(reason, e.Message, StringComparison.OrdinalIgnoreCase); // the parser lower-cases key names
    }

    [Theory]
    [InlineData("Endpoint=http://h:1;AccessKey=a;SecretKey=TopSecret99;Bogus=1")]
    [InlineData("Endpoint=http://h:1;AccessKey=a;SecretKey='TopSecret99")]
    [InlineData("Endpoint=http://h:1;AccessKey=a;SecretKey=TopSecret99;Bucket=NO")]
    public void Never_echoes_the_secret_key(string value)
    {
        var e = Assert.Throws<InvalidOperationException>(() => S3Settings.Parse(value));

        Assert.DoesNotContain("TopSecret99", e.Message);
    }

    [Fact]
    public void ToString_hides_the_secret_key()
    {
        var s = S3Settings.Parse("Endpoint=http://h:1;AccessKey=a;SecretKey=TopSecret99");

        Assert.DoesNotContain("TopSecret99", s.ToString());
        Assert.Contains("SecretKey=***", s.ToString());
    }

    [Theory]
    [InlineData("abc", true)]
    [InlineData("ephemeralci-cache", true)]
    [InlineData("a.b-c", true)]
    [InlineData("ab", false)]
    [InlineData("-abc", false)]
    [InlineData("abc-", false)]
    [InlineData("a..b", false)]
    [InlineData("ABC", false)]
    [InlineData("192.168.1.1", false)]
    public void Knows_s3_bucket_naming_rules(string name, bool valid) =>
        Assert.Equal(valid, S3Settings.IsValidBucketName(name));

    [Fact]
    public void Rejects_a_bucket_name_longer_than_63() =>
        Assert.False(S3Settings.IsValidBucketName(new string('a', 64)));
}
